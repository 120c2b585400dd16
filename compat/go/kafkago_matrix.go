// kafkago_matrix is the compatibility-matrix program of Debian's segmentio/kafka-go 0.2.1 (row
// "kafka-go"); the contract (command line, JSON lines, scenarios) is compat/matrix/README.md:
//
//	kafkago_matrix <bootstrap host:port> <topic prefix> <scenario> [<scenario> ...]
//
// kafka-go 0.2.1 has no version negotiation: every request has one fixed version, which a
// failed scenario's detail names (from the library's source): Metadata v1, Produce v2 (message
// set v1, no headers), Fetch v2, ListOffsets v1, CreateTopics v0, DeleteTopics v1,
// FindCoordinator v0, JoinGroup v1, SyncGroup v0, Heartbeat v0, OffsetCommit v2, OffsetFetch v1,
// LeaveGroup v0. What its API cannot express at all (headers, zstd, acks=0, idempotence, configs,
// partition growth) is n/a.
//
// Built by scripts/setup-clients in GOPATH mode, with compat/go/gopath's strommatrix (the
// contract's frame and the comparisons, shared with sarama_matrix); it passes the library version
// with -ldflags "-X main.kafkaGoVersion=...".
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"strommatrix"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/gzip"
	"github.com/segmentio/kafka-go/lz4"
	"github.com/segmentio/kafka-go/snappy"
)

// kafkaGoVersion is set at build time from the Debian package's version.
var kafkaGoVersion = "unknown"

// How long a reader may go without progress after it reported an error: it retries forever.
const stuckAfterError = 5 * time.Second

var bootstrap string

// --- per-scenario context ---------------------------------------------------------------------

type sc struct {
	ctx   context.Context
	topic string
}

// errorLog is a reader's or writer's ErrorLogger: it keeps the last error line (kafka-go's
// readers retry forever and report most errors only there) and copies every line to stderr.
type errorLog struct {
	name string
	mu   sync.Mutex
	last string
	at   time.Time
}

func (e *errorLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	e.mu.Lock()
	e.last, e.at = line, time.Now()
	e.mu.Unlock()
	fmt.Fprintf(os.Stderr, "[kafka-go %s] %s\n", e.name, line)
	return len(p), nil
}

func (e *errorLog) lastError() (string, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last, e.at
}

func newErrorLog(name string) (*errorLog, *log.Logger) {
	e := &errorLog{name: name}
	return e, log.New(e, "", 0)
}

// --- producing --------------------------------------------------------------------------------

type writerOptions struct {
	balancer kafka.Balancer
	acks     int
	codec    kafka.CompressionCodec
}

// write produces msgs with a kafka.Writer (Produce v2); WriteMessages returns once every
// message is acknowledged (or failed after the writer's attempts).
func (s *sc) write(opts writerOptions, msgs []kafka.Message) error {
	_, logger := newErrorLog("writer")
	acks := opts.acks
	if acks == 0 {
		acks = -1
	}
	w := kafka.NewWriter(kafka.WriterConfig{
		Brokers:          []string{bootstrap},
		Topic:            s.topic,
		Balancer:         opts.balancer,
		RequiredAcks:     acks,
		CompressionCodec: opts.codec,
		BatchSize:        100,
		BatchTimeout:     20 * time.Millisecond,
		MaxAttempts:      3,
		ErrorLogger:      logger,
	})
	defer w.Close()
	if err := w.WriteMessages(s.ctx, msgs...); err != nil {
		return fmt.Errorf("Writer.WriteMessages (Produce v2, message format v1): %v", err)
	}
	return nil
}

func plainMessages(n int) []kafka.Message {
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Value: []byte(strommatrix.Value(i))}
	}
	return msgs
}

// writeReadBack writes msgs, reads the topic back and checks that it holds exactly their values,
// once each; it returns the records read by value.
func (s *sc) writeReadBack(opts writerOptions, msgs []kafka.Message) (map[string]kafka.Message, error) {
	if err := s.write(opts, msgs); err != nil {
		return nil, err
	}
	read, err := s.readBack()
	if err != nil {
		return nil, err
	}
	values := make([]string, len(msgs))
	for i, m := range msgs {
		values[i] = string(m.Value)
	}
	return strommatrix.ExactlyValues(read, values, record)
}

// toPartition is a balancer that sends every message to one partition.
func toPartition(p int) kafka.Balancer {
	return kafka.BalancerFunc(func(_ kafka.Message, partitions ...int) int { return p })
}

// --- reading back -----------------------------------------------------------------------------

// offsets asks the partition's leader for its first and end offsets (ListOffsets v1).
func (s *sc) offsets(part int) (int64, int64, error) {
	conn, err := kafka.DialLeader(s.ctx, "tcp", bootstrap, s.topic, part)
	if err != nil {
		return 0, 0, fmt.Errorf("DialLeader(%d): %v", part, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return 0, 0, fmt.Errorf("ReadOffsets of partition %d (ListOffsets v1): %v", part, err)
	}
	return first, last, nil
}

func newReader(cfg kafka.ReaderConfig) (*kafka.Reader, *errorLog) {
	e, logger := newErrorLog("reader")
	cfg.Brokers = []string{bootstrap}
	cfg.MinBytes = 1
	cfg.MaxBytes = 10 << 20
	cfg.MaxWait = 200 * time.Millisecond
	cfg.ErrorLogger = logger
	return kafka.NewReader(cfg), e
}

// next reads the next message; it fails at the scenario's deadline, or when the reader has
// reported an error and made no progress for stuckAfterError since.
func (s *sc) next(r *kafka.Reader, e *errorLog, what string) (kafka.Message, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	type got struct {
		m   kafka.Message
		err error
	}
	ch := make(chan got, 1)
	go func() {
		m, err := r.ReadMessage(ctx)
		ch <- got{m, err}
	}()
	began := time.Now()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case g := <-ch:
			if g.err != nil {
				if s.ctx.Err() != nil {
					return kafka.Message{}, fmt.Errorf("timed out %s%s", what, lastErr(e))
				}
				return kafka.Message{}, fmt.Errorf("%s: ReadMessage (Fetch v2): %v", what, g.err)
			}
			return g.m, nil
		case <-tick.C:
			if line, at := e.lastError(); line != "" && at.After(began) && time.Since(at) < stuckAfterError &&
				time.Since(began) > stuckAfterError {
				cancel()
				return kafka.Message{}, fmt.Errorf("%s: no record for %s, the reader (Fetch v2) keeps failing: %s", what,
					stuckAfterError, line)
			}
		}
	}
}

func lastErr(e *errorLog) string {
	if line, _ := e.lastError(); line != "" {
		return "; reader's last error: " + line
	}
	return ""
}

// readPartition reads partition part from offset from until the record at offset end-1.
func (s *sc) readPartition(part int, from, end int64) ([]kafka.Message, error) {
	r, e := newReader(kafka.ReaderConfig{Topic: s.topic, Partition: part})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return nil, fmt.Errorf("SetOffset(%d): %v", from, err)
	}
	var msgs []kafka.Message
	for len(msgs) == 0 || msgs[len(msgs)-1].Offset < end-1 {
		m, err := s.next(r, e, fmt.Sprintf("reading partition %d (%d records read, want up to offset %d)", part,
			len(msgs), end-1))
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// readBack reads every partition of the topic from its first offset to its end offset now.
func (s *sc) readBack() (map[int][]kafka.Message, error) {
	out := map[int][]kafka.Message{}
	for part := 0; part < 3; part++ {
		first, end, err := s.offsets(part)
		if err != nil {
			return nil, err
		}
		if end == first {
			continue
		}
		msgs, err := s.readPartition(part, first, end)
		if err != nil {
			return nil, err
		}
		out[part] = msgs
	}
	return out, nil
}

func record(m kafka.Message) strommatrix.Record {
	return strommatrix.Record{Key: m.Key, Value: m.Value, Partition: int32(m.Partition), Offset: m.Offset}
}

// --- the scenarios ----------------------------------------------------------------------------

var scenarios = map[string]func(*sc) (string, error){
	"metadata":           metadata,
	"produce.keys":       produceKeys,
	"produce.headers":    notExpressible("kafka-go 0.2.1's Message has no headers (it writes message format v1, which has none)"),
	"produce.timestamps": produceTimestamps,
	"produce.gzip":       compressed(gzip.NewCompressionCodec(), "gzip"),
	"produce.snappy":     compressed(snappy.NewCompressionCodec(), "snappy"),
	"produce.lz4":        compressed(lz4.NewCompressionCodec(), "lz4"),
	"produce.zstd":       notExpressible("kafka-go 0.2.1 has no zstd codec (only gzip, snappy, lz4)"),
	"produce.acks0": notExpressible("kafka-go 0.2.1 cannot produce with acks=0: Conn.SetRequiredAcks accepts only " +
		"-1 and 1, and the Writer ignores its refusal"),
	"produce.acks1":                 acks(1),
	"produce.acksall":               acks(-1),
	"produce.idempotent":            notExpressible("kafka-go 0.2.1 has no idempotent producer (no InitProducerId, no producer ids)"),
	"consume.assign_seek":           assignSeek,
	"consume.from_beginning":        fromBeginning,
	"consume.from_timestamp":        fromTimestamp,
	"group.subscribe_commit_resume": groupResume,
	"admin.topics":                  adminTopics,
	"admin.configs":                 notExpressible("kafka-go 0.2.1 has no DescribeConfigs or AlterConfigs"),
	"admin.partitions":              notExpressible("kafka-go 0.2.1 has no CreatePartitions"),
}

func notExpressible(why string) func(*sc) (string, error) {
	return func(*sc) (string, error) { return "", strommatrix.NotApplicable(why) }
}

func metadata(s *sc) (string, error) {
	conn, err := kafka.DialContext(s.ctx, "tcp", bootstrap)
	if err != nil {
		return "", fmt.Errorf("Dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	parts, err := conn.ReadPartitions(s.topic) // Metadata v1
	if err != nil {
		return "", fmt.Errorf("ReadPartitions (Metadata v1): %v", err)
	}
	var ids []int
	for _, p := range parts {
		if p.Topic != s.topic {
			return "", fmt.Errorf("ReadPartitions(%s) listed a partition of %q", s.topic, p.Topic)
		}
		ids = append(ids, p.ID)
		// ReadPartitions resolves the leader id among the brokers the response lists; an
		// unlisted leader comes back as an empty Broker.
		addr := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
		if p.Leader.Host == "" {
			return "", fmt.Errorf("partition %d: its leader is not among the listed brokers", p.ID)
		}
		if addr != bootstrap {
			return "", fmt.Errorf("partition %d: leader %d is at %s, bootstrap is %s", p.ID, p.Leader.ID, addr, bootstrap)
		}
	}
	sort.Ints(ids)
	if fmt.Sprint(ids) != "[0 1 2]" {
		return "", fmt.Errorf("partitions %v, want [0 1 2]", ids)
	}
	return fmt.Sprintf("3 partitions, leaders at %s (Metadata v1)", bootstrap), nil
}

func produceKeys(s *sc) (string, error) {
	var msgs []kafka.Message
	for i := 0; i < 105; i++ {
		m := kafka.Message{Value: []byte(strommatrix.Value(i))}
		if i < 100 {
			m.Key = []byte(strommatrix.Key(i))
		}
		msgs = append(msgs, m)
	}
	got, err := s.writeReadBack(writerOptions{balancer: &kafka.Hash{}}, msgs)
	if err != nil {
		return "", err
	}
	if err := strommatrix.CheckKeys(got, record); err != nil {
		return "", err
	}
	return "105 records read back once each; each key in one partition, in order; null keys null", nil
}

func produceTimestamps(s *sc) (string, error) {
	msgs := plainMessages(10)
	for i := range msgs {
		msgs[i].Time = strommatrix.MsTime(strommatrix.T0 + int64(i)*1000)
	}
	got, err := s.writeReadBack(writerOptions{}, msgs)
	if err != nil {
		return "", err
	}
	for i, m := range msgs {
		v := string(m.Value)
		if ts := strommatrix.Ms(got[v].Time); ts != strommatrix.T0+int64(i)*1000 {
			return "", fmt.Errorf("%s: timestamp %d, sent %d", v, ts, strommatrix.T0+int64(i)*1000)
		}
	}
	// kafka-go's Message has no timestamp type; a LogAppendTime would not equal the times sent.
	return "10 timestamps read back exactly (kafka-go does not expose the type; equal times rule out LogAppendTime)", nil
}

func compressed(codec kafka.CompressionCodec, name string) func(*sc) (string, error) {
	return func(s *sc) (string, error) {
		var msgs []kafka.Message
		for i := 0; i < 1000; i++ {
			msgs = append(msgs, kafka.Message{Value: []byte(strommatrix.CompressibleValue(i))})
		}
		if _, err := s.writeReadBack(writerOptions{codec: codec}, msgs); err != nil {
			return "", err
		}
		return fmt.Sprintf("1000 %s-compressed records read back byte-exact", name), nil
	}
}

func acks(n int) func(*sc) (string, error) {
	return func(s *sc) (string, error) {
		if _, err := s.writeReadBack(writerOptions{acks: n}, plainMessages(200)); err != nil {
			return "", err
		}
		return fmt.Sprintf("200 records with acks=%d read back once each", n), nil
	}
}

func assignSeek(s *sc) (string, error) {
	if err := s.write(writerOptions{balancer: toPartition(0)}, plainMessages(50)); err != nil {
		return "", err
	}
	got, err := s.readPartition(0, 20, 50)
	if err != nil {
		return "", err
	}
	if err := strommatrix.CheckSeek(20, got, record); err != nil {
		return "", err
	}
	return "SetOffset(20) on partition 0: offsets 20..49 with values v20..v49, in order", nil
}

func fromBeginning(s *sc) (string, error) {
	if err := s.write(writerOptions{balancer: &kafka.RoundRobin{}}, plainMessages(30)); err != nil {
		return "", err
	}
	// One reader per partition (a kafka-go Reader reads one partition, or a group), each left at
	// its initial offset, FirstOffset; read until 30 records are in, and a little longer.
	type got struct {
		m   kafka.Message
		err error
	}
	ch := make(chan got, 64)
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	var wg sync.WaitGroup
	for part := 0; part < 3; part++ {
		r, e := newReader(kafka.ReaderConfig{Topic: s.topic, Partition: part})
		defer r.Close()
		wg.Add(1)
		go func(part int, r *kafka.Reader, e *errorLog) {
			defer wg.Done()
			sub := &sc{ctx: ctx, topic: s.topic}
			for {
				m, err := sub.next(r, e, fmt.Sprintf("reading partition %d", part))
				if ctx.Err() != nil {
					return
				}
				ch <- got{m, err}
				if err != nil {
					return
				}
			}
		}(part, r, e)
	}
	read := map[int][]kafka.Message{}
	n := 0
	var grace <-chan time.Time
collect:
	for {
		select {
		case g := <-ch:
			if g.err != nil {
				return "", g.err
			}
			read[g.m.Partition] = append(read[g.m.Partition], g.m)
			n++
			if n == 30 {
				grace = time.After(500 * time.Millisecond)
			}
		case <-grace:
			break collect
		case <-s.ctx.Done():
			return "", fmt.Errorf("timed out: %d of 30 records read", n)
		}
	}
	cancel()
	if _, err := strommatrix.ExactlyValues(read, strommatrix.Values(0, 30), record); err != nil {
		return "", err
	}
	return "readers at FirstOffset on the 3 partitions: all 30 records, once each", nil
}

func fromTimestamp(s *sc) (string, error) {
	msgs := plainMessages(20)
	for i := range msgs {
		msgs[i].Time = strommatrix.MsTime(strommatrix.T0 + int64(i)*1000)
	}
	if err := s.write(writerOptions{balancer: toPartition(0)}, msgs); err != nil {
		return "", err
	}
	conn, err := kafka.DialLeader(s.ctx, "tcp", bootstrap, s.topic, 0)
	if err != nil {
		return "", fmt.Errorf("DialLeader: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	offset, err := conn.ReadOffset(strommatrix.MsTime(strommatrix.T0 + 10000)) // ListOffsets v1
	if err != nil {
		return "", fmt.Errorf("ReadOffset(T0+10000) (ListOffsets v1): %v", err)
	}
	if offset != 10 {
		return "", fmt.Errorf("ReadOffset(T0+10000) (ListOffsets v1) = %d, want 10", offset)
	}
	got, err := s.readPartition(0, offset, offset+1)
	if err != nil {
		return "", err
	}
	if got[0].Offset != 10 || string(got[0].Value) != strommatrix.Value(10) {
		return "", fmt.Errorf("first record from offset 10: offset %d value %q, want 10, v10", got[0].Offset, got[0].Value)
	}
	return "ReadOffset(T0+10000) = 10; reading from there starts with v10", nil
}

// groupRead has a group reader read until it holds n records (and a little longer when strict),
// committing each (ReadMessage commits synchronously with CommitInterval 0).
func (s *sc) groupRead(group string, n int, name string) ([]string, error) {
	r, e := newReader(kafka.ReaderConfig{Topic: s.topic, GroupID: group,
		SessionTimeout: 10 * time.Second, HeartbeatInterval: 500 * time.Millisecond})
	var values []string
	var err error
	for len(values) < n {
		var m kafka.Message
		if m, err = s.next(r, e, fmt.Sprintf("consumer %s reading (%d of %d records)", name, len(values), n)); err != nil {
			break
		}
		values = append(values, string(m.Value))
	}
	if err == nil {
		// Any record beyond the n would show up now.
		ctx, cancel := context.WithTimeout(s.ctx, 500*time.Millisecond)
		if m, rerr := r.ReadMessage(ctx); rerr == nil {
			values = append(values, string(m.Value))
		}
		cancel()
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }() // LeaveGroup v0
	select {
	case cerr := <-closed:
		if err == nil && cerr != nil {
			err = fmt.Errorf("consumer %s: Close: %v", name, cerr)
		}
	case <-time.After(15 * time.Second):
		if err == nil {
			err = fmt.Errorf("consumer %s: Close did not return", name)
		}
	}
	return values, err
}

func groupResume(s *sc) (string, error) {
	group := s.topic + "-group"
	if err := s.write(writerOptions{balancer: &kafka.RoundRobin{}}, plainMessages(40)); err != nil {
		return "", err
	}
	a, err := s.groupRead(group, 40, "A")
	if err != nil {
		return "", err
	}
	if err := strommatrix.ExactlyStrings(a, strommatrix.Values(0, 40)); err != nil {
		return "", fmt.Errorf("consumer A: %v", err)
	}
	second := make([]kafka.Message, 10)
	for i := range second {
		second[i] = kafka.Message{Value: []byte(strommatrix.Value(40 + i))}
	}
	if err := s.write(writerOptions{balancer: &kafka.RoundRobin{}}, second); err != nil {
		return "", err
	}
	b, err := s.groupRead(group, 10, "B")
	if err != nil {
		return "", err
	}
	if err := strommatrix.ExactlyStrings(b, strommatrix.Values(40, 50)); err != nil {
		return "", fmt.Errorf("consumer B: %v", err)
	}
	return "A read 40 and committed; B in the same group read exactly the 10 new records", nil
}

// partitionsListed reads the metadata of all topics (Metadata v1, no topic named) and says how
// many partitions topic has, 0 when it is not listed.
// partitionsListed asks Metadata v1 for topic by name: kafka-go 0.2.1's ReadPartitions() with no
// name sends an empty topic list, which from v1 on means "no topics" (null means all), so a
// listing of every topic cannot be asked for. Naming a topic in Metadata v1-3 auto-creates it
// when the broker allows that, as Kafka does.
func (s *sc) partitionsListed(topic string) (int, error) {
	conn, err := kafka.DialContext(s.ctx, "tcp", bootstrap)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range parts {
		if p.Topic == topic {
			n++
		}
	}
	return n, nil
}

func adminTopics(s *sc) (string, error) {
	name := s.topic + "-new"
	conn, err := kafka.DialContext(s.ctx, "tcp", bootstrap)
	if err != nil {
		return "", fmt.Errorf("Dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := conn.CreateTopics(kafka.TopicConfig{Topic: name, NumPartitions: 2, ReplicationFactor: 1}); err != nil {
		return "", fmt.Errorf("CreateTopics (CreateTopics v0): %v", err)
	}
	n := 0
	if err := strommatrix.WaitUntil(s.ctx, name+" listed with 2 partitions", func() (bool, error) {
		var err error
		n, err = s.partitionsListed(name)
		return err == nil && n == 2, err
	}); err != nil {
		return "", fmt.Errorf("%v (last seen: %d partitions)", err, n)
	}
	if err := conn.DeleteTopics(name); err != nil {
		return "", fmt.Errorf("DeleteTopics (DeleteTopics v1): %v", err)
	}
	// Asking for the name again auto-creates a new topic with the broker's num.partitions (1
	// here), so "gone" shows as the 2-partition topic no longer being there.
	if err := strommatrix.WaitUntil(s.ctx, name+" no longer listed with 2 partitions", func() (bool, error) {
		n, err := s.partitionsListed(name)
		return n != 2, err
	}); err != nil {
		return "", err
	}
	conn.DeleteTopics(name)
	return "created with 2 partitions (CreateTopics v0), listed (Metadata v1), deleted (DeleteTopics v1), its 2 partitions gone", nil
}

// --- main -------------------------------------------------------------------------------------

func main() {
	strommatrix.Main(strommatrix.Program[sc]{
		Name: "kafkago_matrix", Client: "kafka-go", Version: kafkaGoVersion, Bootstrap: &bootstrap,
		Scenarios: scenarios,
		New:       func(ctx context.Context, topic string) *sc { return &sc{ctx: ctx, topic: topic} },
	})
}
