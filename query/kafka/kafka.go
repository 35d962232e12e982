package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/redact"
)

// Build is New for a run: tracing its requests to rt's log.
func Build(cfg Config, rt query.Runtime) (query.Source, error) {
	return New(cfg, query.WithTrace(rt.Tracer()))
}

// Kafka is a BatchSource that reads consumer-group lag. A run makes the
// same few requests whatever the number of apps: one connection check, one
// offset fetch for every group, and the end and start offsets of every
// topic.
type Kafka struct {
	cfg  Config
	tls  *tls.Config
	red  *redact.Redactor // its password, in every form
	opts query.SourceOptions
}

var _ query.BatchSource = (*Kafka)(nil)

// New validates cfg and returns a source that reads it. It does not
// connect: each run does, in Start.
func New(cfg Config, opts ...query.SourceOption) (*Kafka, error) {
	norm, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	tc, err := norm.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("kafka metric %q: %w", norm.Name, err)
	}
	return &Kafka{cfg: norm, tls: tc, red: redact.ForSecrets(norm.Secrets()...), opts: query.NewSourceOptions(opts)}, nil
}

// Name returns the metric name.
func (k *Kafka) Name() string { return k.cfg.Name }

// String describes the source without its password.
func (k *Kafka) String() string { return k.cfg.String() }

// GoString keeps the password out of %#v.
func (k *Kafka) GoString() string { return k.String() }

// Collect reads app's lag with a client of its own. A Set uses Start
// instead, to read every app's lag in the same few requests.
func (k *Kafka) Collect(ctx context.Context, app string) (float64, error) {
	b, err := k.Start(ctx, []string{app})
	if err != nil {
		return 0, err
	}
	defer b.Close()
	r, err := b.Read(ctx, app)
	return r.Value, err
}

// Start builds the run's client, checks once that a broker answers, and
// reads the offsets that every app of apps needs.
func (k *Kafka) Start(ctx context.Context, apps []string) (query.Batch, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.cfg.Brokers...),
		kgo.ClientID("fly-autoscaler"),
		kgo.DialTimeout(query.DefaultConnectTimeout),
	}
	if k.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(k.tls.Clone()))
	}
	if m := k.cfg.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", k.redact(err))
	}
	err = k.opts.Traced(k.cfg.Name, "connect "+strings.Join(k.cfg.Brokers, ","), func() error {
		pctx, cancel := context.WithTimeout(ctx, query.DefaultConnectTimeout)
		defer cancel()
		return k.redact(cl.Ping(pctx))
	})
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(k.cfg.Brokers, ","), err)
	}
	b := &kafkaBatch{src: k, cl: cl, adm: kadm.NewClient(cl)}
	b.offsets = b.fetch(ctx, apps)
	return b, nil
}

func (k *Kafka) redact(err error) error { return query.RedactError(err, k.red) }

// kafkaBatch is one run of a Kafka source.
type kafkaBatch struct {
	src     *Kafka
	cl      *kgo.Client
	adm     *kadm.Client
	offsets *kafkaOffsets // of the apps given to Start
}

// kafkaOffsets are the offsets of a set of groups and topics.
type kafkaOffsets struct {
	groups, topics []string
	committed      kadm.FetchOffsetsResponses
	end, start     kadm.ListedOffsets
	// endErr and startErr fail every topic; endTopicErr and
	// startTopicErr the topics of a shard that failed.
	endErr, startErr           error
	endTopicErr, startTopicErr map[string]error
}

// fetch reads, for every topic and group of apps, the end and start
// offsets and the committed offsets: three reads, each one request per
// broker concerned (and the metadata the listings need), whatever the
// number of apps.
func (b *kafkaBatch) fetch(ctx context.Context, apps []string) *kafkaOffsets {
	o := &kafkaOffsets{}
	for _, app := range apps {
		if query.ValidAppName(app) != nil {
			continue
		}
		o.groups = append(o.groups, query.Expand(b.src.cfg.Group, app))
		o.topics = append(o.topics, query.Expand(b.src.cfg.Topic, app))
	}
	o.groups, o.topics = dedup(o.groups), dedup(o.topics)
	if len(o.topics) == 0 {
		return o
	}
	name := b.src.cfg.Name
	trace := b.src.opts.Traced
	// One read after the other: each then finds the topics' metadata that
	// the one before loaded in the client, so a run makes the same
	// requests every time (the offset fetch names topics by ID).
	_ = trace(name, fmt.Sprintf("list end offsets of %d topics", len(o.topics)), func() error {
		var err error
		o.end, err = b.adm.ListEndOffsets(ctx, o.topics...)
		o.endErr, o.endTopicErr = splitShardErrors(b.src.redact(err))
		return err
	})
	if b.src.cfg.UnconsumedFrom == UnconsumedEarliest {
		_ = trace(name, fmt.Sprintf("list start offsets of %d topics", len(o.topics)), func() error {
			var err error
			o.start, err = b.adm.ListStartOffsets(ctx, o.topics...)
			o.startErr, o.startTopicErr = splitShardErrors(b.src.redact(err))
			return err
		})
	}
	_ = trace(name, fmt.Sprintf("fetch committed offsets of %d groups", len(o.groups)), func() error {
		o.committed = b.adm.FetchManyOffsets(ctx, o.groups...)
		var errs []error
		o.committed.EachError(func(r kadm.FetchOffsetsResponse) {
			if !errors.Is(r.Err, kerr.GroupIDNotFound) {
				errs = append(errs, fmt.Errorf("group %s: %w", r.Group, r.Err))
			}
		})
		return b.src.redact(errors.Join(errs...))
	})
	return o
}

func dedup(ss []string) []string {
	sort.Strings(ss)
	return slices.Compact(ss)
}

// splitShardErrors tells an error that fails every topic from the failure
// of some brokers' shares of a listing, which fail only their topics.
func splitShardErrors(err error) (all error, byTopic map[string]error) {
	if err == nil {
		return nil, nil
	}
	var se *kadm.ShardErrors
	if !errors.As(err, &se) || se.AllFailed {
		return err, nil
	}
	byTopic = map[string]error{}
	for _, s := range se.Errs {
		req, ok := s.Req.(*kmsg.ListOffsetsRequest)
		if !ok {
			return err, nil
		}
		for _, t := range req.Topics {
			byTopic[t.Topic] = fmt.Errorf("broker %d: %w", s.Broker.NodeID, s.Err)
		}
	}
	return nil, byTopic
}

// Read returns app's lag from the offsets read by Start. An app that Start
// did not know is read on its own, bounded by ctx.
func (b *kafkaBatch) Read(ctx context.Context, app string) (query.Reading, error) {
	if err := query.ValidAppName(app); err != nil {
		return query.Reading{}, err
	}
	topic, group := query.Expand(b.src.cfg.Topic, app), query.Expand(b.src.cfg.Group, app)
	o := b.offsets
	if !slices.Contains(o.topics, topic) || !slices.Contains(o.groups, group) {
		o = b.fetch(ctx, []string{app})
	}
	lag, warn, err := o.lag(topic, group, b.src.cfg.UnconsumedFrom == UnconsumedEarliest)
	if err != nil {
		return query.Reading{}, err
	}
	return query.Reading{Value: float64(lag), Warnings: warn}, nil
}

// lag sums the lag of group on every partition of topic: end − committed
// where the group committed, else end − log start (earliest) or 0
// (latest). Any error, on the topic or on one partition, fails the whole:
// a partial sum would read as less work than there is.
func (o *kafkaOffsets) lag(topic, group string, earliest bool) (int64, []string, error) {
	if err := o.listed(o.end, o.endErr, o.endTopicErr, topic); errors.Is(err, errTopicMissing) {
		return 0, nil, fmt.Errorf("topic %s does not exist", topic)
	} else if err != nil {
		return 0, nil, fmt.Errorf("topic %s: end offsets: %w", topic, err)
	}
	ends := o.end[topic]
	fetched, ok := o.committed[group]
	if !ok {
		return 0, nil, fmt.Errorf("group %s: no answer to the offset fetch", group)
	}
	if fetched.Err != nil && !errors.Is(fetched.Err, kerr.GroupIDNotFound) {
		return 0, nil, fmt.Errorf("group %s: committed offsets: %w", group, fetched.Err)
	}
	if earliest {
		if err := o.listed(o.start, o.startErr, o.startTopicErr, topic); err != nil {
			return 0, nil, fmt.Errorf("topic %s: start offsets: %w", topic, err)
		}
	}
	partitions := make([]int32, 0, len(ends))
	for p := range ends {
		partitions = append(partitions, p)
	}
	slices.Sort(partitions)
	var lag int64
	commits := 0
	for _, p := range partitions {
		end := ends[p]
		if end.Err != nil {
			return 0, nil, fmt.Errorf("topic %s partition %d: end offset: %w", topic, p, end.Err)
		}
		if c, ok := fetched.Fetched.Lookup(topic, p); ok {
			if c.Err != nil {
				return 0, nil, fmt.Errorf("group %s topic %s partition %d: committed offset: %w", group, topic, p, c.Err)
			}
			if c.At >= 0 {
				commits++
				lag += max(0, end.Offset-c.At)
				continue
			}
		}
		if !earliest {
			continue
		}
		start, ok := o.start.Lookup(topic, p)
		switch {
		case !ok:
			return 0, nil, fmt.Errorf("topic %s partition %d: no start offset listed", topic, p)
		case start.Err != nil:
			return 0, nil, fmt.Errorf("topic %s partition %d: start offset: %w", topic, p, start.Err)
		}
		lag += max(0, end.Offset-start.Offset)
	}
	var warn []string
	if commits == 0 {
		warn = append(warn, fmt.Sprintf("group %s has no committed offsets", group))
	}
	return lag, warn, nil
}

var errTopicMissing = errors.New("topic does not exist")

// listed checks that a listing has topic's offsets: the listing did not
// fail, nor its share for topic, and the topic exists.
func (o *kafkaOffsets) listed(l kadm.ListedOffsets, all error, byTopic map[string]error, topic string) error {
	switch {
	case all != nil:
		return all
	case byTopic[topic] != nil:
		return byTopic[topic]
	}
	ps, ok := l[topic]
	if !ok || len(ps) == 0 {
		return errors.New("not listed")
	}
	if missing, ok := ps[-1]; ok && missing.Err != nil {
		if errors.Is(missing.Err, kerr.UnknownTopicOrPartition) {
			return errTopicMissing
		}
		return missing.Err
	}
	return nil
}

// Close closes the run's client.
func (b *kafkaBatch) Close() error {
	b.cl.Close()
	return nil
}
