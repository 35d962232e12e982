// Package kafkatest runs franz-go's kfake Kafka cluster in the test's
// process and sets up topics, records, commits and log starts of a known
// shape. It counts the requests the cluster handles, so that a test can
// assert how many a run made. Only tests import it: the fake broker never
// reaches the product binary.
//
//	c := kafkatest.Start(t, 1)
//	c.Topic(t, "orders-a", 3)
//	c.Produce(t, "orders-a", 0, 10)
//	c.Commit(t, "workers-a", "orders-a", 0, 4)
//	// point the code under test at c.Brokers()
package kafkatest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Cluster is a running kfake cluster on 127.0.0.1.
type Cluster struct {
	c     *kfake.Cluster
	addrs []string
	cl    *kgo.Client
	adm   *kadm.Client

	stop     sync.Once
	mu       sync.Mutex
	counting bool
	requests map[string]int // by request name, while counting
}

// Start starts a cluster of n brokers and closes it when the test ends.
func Start(t testing.TB, brokers int) *Cluster {
	t.Helper()
	return start(t, []kfake.Opt{kfake.NumBrokers(brokers)})
}

// StartSCRAM starts a cluster of n brokers that requires SASL
// SCRAM-SHA-256 with user and pass.
func StartSCRAM(t testing.TB, brokers int, user, pass string) *Cluster {
	t.Helper()
	return start(t, []kfake.Opt{kfake.NumBrokers(brokers), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", user, pass)},
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
}

func start(t testing.TB, opts []kfake.Opt, clientOpts ...kgo.Opt) *Cluster {
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	k := &Cluster{c: c, addrs: c.ListenAddrs(), requests: map[string]int{}}
	t.Cleanup(k.Stop)
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.mu.Lock()
		if k.counting {
			k.requests[kmsg.NameForKey(req.Key())]++
		}
		k.mu.Unlock()
		return nil, nil, false // only counted: the cluster answers
	})
	clientOpts = append(clientOpts, kgo.SeedBrokers(k.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if k.cl, err = kgo.NewClient(clientOpts...); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	k.adm = kadm.NewClient(k.cl)
	return k
}

// Brokers returns the brokers' addresses, host:port, also once stopped.
func (k *Cluster) Brokers() []string { return k.addrs }

// Stop closes the cluster; its ports then refuse connections.
func (k *Cluster) Stop() {
	k.stop.Do(func() {
		k.cl.Close()
		k.c.Close()
	})
}

// Count starts counting the requests the cluster handles, from zero. Set
// up the data first: the setup's own requests are not counted after.
func (k *Cluster) Count() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.counting = true
	clear(k.requests)
}

// Requests returns the requests counted since Count, by request name
// (Metadata, ListOffsets, OffsetFetch, ...), and their total.
func (k *Cluster) Requests() (map[string]int, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int, len(k.requests))
	total := 0
	for name, n := range k.requests {
		out[name] = n
		total += n
	}
	return out, total
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Topic creates a topic of the given number of partitions.
func (k *Cluster) Topic(t testing.TB, topic string, partitions int32) {
	t.Helper()
	resp, err := k.adm.CreateTopic(ctx(t), partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("kafkatest: create topic %s: %v", topic, err)
	}
}

// Produce writes n records to one partition of topic.
func (k *Cluster) Produce(t testing.TB, topic string, partition int32, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: fmt.Appendf(nil, "record %d", i)}
	}
	if err := k.cl.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("kafkatest: produce to %s/%d: %v", topic, partition, err)
	}
}

// Commit commits offset for group on one partition of topic, as a consumer
// that has processed every record before offset would.
func (k *Cluster) Commit(t testing.TB, group, topic string, partition int32, offset int64) {
	t.Helper()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: partition, At: offset, LeaderEpoch: -1})
	resp, err := k.adm.CommitOffsets(ctx(t), group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("kafkatest: commit %s %s/%d at %d: %v", group, topic, partition, offset, err)
	}
}

// DeleteRecords moves the log start of one partition of topic to offset,
// as retention would.
func (k *Cluster) DeleteRecords(t testing.TB, topic string, partition int32, offset int64) {
	t.Helper()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: partition, At: offset, LeaderEpoch: -1})
	resp, err := k.adm.DeleteRecords(ctx(t), os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("kafkatest: delete records of %s/%d before %d: %v", topic, partition, offset, err)
	}
}

// String names the cluster by its brokers.
func (k *Cluster) String() string { return "kfake " + strings.Join(k.Brokers(), ",") }
