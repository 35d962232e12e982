package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/superfly/fly-autoscaler/query"
	"github.com/superfly/fly-autoscaler/query/redact"
)

// Where a consumer group without a commit on a partition would start.
const (
	// UnconsumedEarliest counts a partition without a commit from its log
	// start: every message still kept is work. It is the default.
	UnconsumedEarliest = "earliest"
	// UnconsumedLatest counts a partition without a commit as 0, for
	// consumers that start at the end.
	UnconsumedLatest = "latest"
)

// SASL mechanisms of a Kafka source.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// Config configures one Kafka source: a consumer group's lag on a
// topic, summed over the topic's partitions.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `key:"brokers" flag:"kafka-brokers" defines:"true" need:"the brokers, e.g. kafka.internal:9092" help:"Kafka {BROKERS}, host:port, comma-separated"`
	// Name is the metric name, the variable scaling expressions refer to.
	Name string `key:"metric-name" flag:"kafka-metric-name" defines:"true" need:"the name the expressions use for the lag" help:"{NAME} of the group's lag in expressions"`
	// Topic and Group name what is measured; $APP_NAME is replaced by the
	// app's name. Group "" means $APP_NAME.
	Topic string `key:"topic" template:"true" flag:"kafka-topic" defines:"true" need:"the topic, e.g. orders-$APP_NAME" help:"{TOPIC} whose lag is summed over its partitions; $APP_NAME is replaced"`
	Group string `key:"group" template:"true" flag:"kafka-group" defines:"true" help:"consumer {GROUP}; $APP_NAME is replaced (default: $APP_NAME)"`
	// UnconsumedFrom is UnconsumedEarliest ("" too) or UnconsumedLatest.
	UnconsumedFrom string `key:"unconsumed-from"`
	// SASLMechanism is "" (none) or one of the SASL* constants, with
	// Username and Password.
	SASLMechanism string `key:"sasl-mechanism" flag:"kafka-sasl-mechanism" defines:"true" help:"SASL {MECHANISM}: plain, scram-sha-256 or scram-sha-512"`
	Username      string `key:"username" flag:"kafka-username" defines:"true" help:"SASL {USER} for Kafka"`
	Password      string `key:"password" flag:"kafka-password" secret:"true" defines:"true" help:"SASL {PASSWORD} for Kafka"`
	// TLS connects with TLS, verified against TLSCA (default: the system's
	// roots) unless TLSInsecureSkipVerify; TLSCert and TLSKey are a client
	// certificate. Any of the files implies TLS; nil is unset, and false
	// with any of them is a contradiction.
	TLS                   *bool  `key:"tls"`
	TLSCA                 string `key:"tls-ca"`
	TLSCert               string `key:"tls-cert"`
	TLSKey                string `key:"tls-key"`
	TLSInsecureSkipVerify bool   `key:"tls-insecure-skip-verify"`

	useTLS bool // normalized: TLS is on
}

// String describes c without its password.
func (c Config) String() string {
	return fmt.Sprintf("kafka metric %q brokers=%s topic=%q group=%q", c.Name, strings.Join(c.Brokers, ","), c.Topic, c.Group)
}

// GoString keeps the password out of %#v.
func (c Config) GoString() string { return c.String() }

// Secrets returns what must never be printed about c.
func (c Config) Secrets() []string { return query.NonEmpty([]string{c.Password}) }

// Validate checks c. Its errors name the field by its configuration key.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

func (c Config) normalize() (Config, error) {
	errorf, err := query.CheckName("kafka", c.Name)
	if err != nil {
		return c, err
	}
	fail := func(format string, args ...any) (Config, error) {
		return c, errorf(format, args...)
	}
	var brokers []string
	for _, b := range c.Brokers {
		for _, b := range strings.Split(b, ",") {
			if b = strings.TrimSpace(b); b == "" {
				continue
			}
			if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
				return fail("brokers: %q: want host:port, e.g. kafka.internal:9092", redact.RedactURL(b))
			}
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		return fail("brokers: empty: give host:port, e.g. kafka.internal:9092")
	}
	c.Brokers = brokers
	if strings.TrimSpace(c.Topic) == "" {
		return fail("topic: empty")
	}
	if strings.TrimSpace(c.Group) == "" {
		c.Group = "$" + query.AppVar
	}
	for _, f := range []struct{ key, val string }{{"topic", c.Topic}, {"group", c.Group}} {
		if strings.ContainsFunc(f.val, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return fail("%s %q: no whitespace or control characters", f.key, f.val)
		}
	}
	switch c.UnconsumedFrom = strings.ToLower(strings.TrimSpace(c.UnconsumedFrom)); c.UnconsumedFrom {
	case "":
		c.UnconsumedFrom = UnconsumedEarliest
	case UnconsumedEarliest, UnconsumedLatest:
	default:
		return fail("unconsumed-from %q: want earliest or latest", c.UnconsumedFrom)
	}
	switch c.SASLMechanism = strings.ToLower(strings.TrimSpace(c.SASLMechanism)); c.SASLMechanism {
	case "":
		if c.Username != "" || c.Password != "" {
			return fail("username, password: set sasl-mechanism too (plain, scram-sha-256 or scram-sha-512)")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.Username == "" || c.Password == "" {
			return fail("sasl-mechanism %s: set username and password", c.SASLMechanism)
		}
	default:
		return fail("sasl-mechanism %q: want plain, scram-sha-256 or scram-sha-512", c.SASLMechanism)
	}
	for _, f := range []struct{ key, path string }{{"tls-ca", c.TLSCA}, {"tls-cert", c.TLSCert}, {"tls-key", c.TLSKey}} {
		if err := query.ReadableFile(f.path); err != nil {
			return fail("%s: %v", f.key, err)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fail("tls-cert, tls-key: set both or neither")
	}
	implied := c.TLSCA != "" || c.TLSCert != "" || c.TLSInsecureSkipVerify
	if c.TLS != nil && !*c.TLS && implied {
		return fail("tls: false, but tls-ca, tls-cert or tls-insecure-skip-verify is set: drop them or set tls: true")
	}
	c.useTLS = implied || (c.TLS != nil && *c.TLS)
	return c, nil
}

// tlsConfig builds the TLS configuration, or nil without TLS.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.useTLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLSInsecureSkipVerify} //nolint:gosec // the user's choice, off by default
	if c.TLSCA != "" {
		pem, err := query.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls-ca %s: no PEM certificate in it", c.TLSCA)
		}
		cfg.RootCAs = pool
	}
	if c.TLSCert != "" {
		certPEM, err := query.ReadFile(c.TLSCert)
		if err != nil {
			return nil, fmt.Errorf("tls-cert: %w", err)
		}
		keyPEM, err := query.ReadFile(c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls-key: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// The error may quote the key file's content.
			return nil, errors.New("tls-cert, tls-key: not a matching PEM certificate and key")
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (c Config) mechanism() sasl.Mechanism {
	switch c.SASLMechanism {
	case SASLPlain:
		return plain.Auth{User: c.Username, Pass: c.Password}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism()
	}
	return nil
}

// MetricName is the name the expressions use for the lag.
func (c Config) MetricName() string { return c.Name }

var _ query.SourceConfig = Config{}
