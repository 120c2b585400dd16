// sarama_matrix is the compatibility-matrix program of Debian's sarama 1.22 (row "sarama"); the
// contract (command line, JSON lines, scenarios) is compat/matrix/README.md:
//
//	sarama_matrix <bootstrap host:port> <topic prefix> <scenario> [<scenario> ...]
//
// sarama derives every request version from config.Version. Strom serves Fetch v4 and up, so
// every client here uses at least 0.11.0.0 (Fetch v4, Produce v3 with record batches, headers);
// most use 1.0.0.0 (also CreateTopics v2, Metadata v5). produce.zstd uses 2.1.0.0, the version
// from which sarama allows zstd. A failed scenario's detail ends with the requests (API and
// version) sarama sent during it, read off the wire by a recording net.Conn.
//
// Built by scripts/setup-clients in GOPATH mode, with compat/go/gopath's strommatrix (the
// contract's frame, the comparisons and the request recorder, shared with kafkago_matrix and
// sarama_group_check); it passes the library version with -ldflags "-X main.saramaVersion=...".
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"strommatrix"

	"github.com/Shopify/sarama"
)

// saramaVersion is set at build time from the Debian package's version.
var saramaVersion = "unknown"

var bootstrap string

// --- per-scenario context ---------------------------------------------------------------------

type sc struct {
	ctx   context.Context
	topic string
}

func (s *sc) expired() bool { return s.ctx.Err() != nil }

func config(version sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "strom-matrix-sarama"
	c.Version = version
	c.Net.Proxy.Enable = true // not a proxy: a dialer that records the requests sent
	c.Net.Proxy.Dialer = strommatrix.RecordingDialer{Sent: recordSent}
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 5 * time.Second
	c.Metadata.Retry.Max = 5
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Timeout = 10 * time.Second
	c.Producer.Retry.Max = 3
	c.Consumer.Return.Errors = true
	c.Consumer.MaxWaitTime = 200 * time.Millisecond
	c.Admin.Timeout = 10 * time.Second
	return c
}

// --- producing --------------------------------------------------------------------------------

// send produces msgs in order with a SyncProducer; on return each message carries its partition
// and offset (offsets are unknown with acks=0).
func send(cfg *sarama.Config, msgs []*sarama.ProducerMessage) error {
	p, err := sarama.NewSyncProducer([]string{bootstrap}, cfg)
	if err != nil {
		return fmt.Errorf("NewSyncProducer: %v", err)
	}
	defer p.Close()
	if err := p.SendMessages(msgs); err != nil {
		if perrs, ok := err.(sarama.ProducerErrors); ok && len(perrs) > 0 {
			return fmt.Errorf("SendMessages: %d of %d failed, first: %v", len(perrs), len(msgs), perrs[0].Err)
		}
		return fmt.Errorf("SendMessages: %v", err)
	}
	return nil
}

func plainMessages(topic string, n int) []*sarama.ProducerMessage {
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(strommatrix.Value(i))}
	}
	return msgs
}

// sendReadBack sends msgs, reads the topic back (clients of cfg.Version) and checks that it holds
// exactly their values, once each; it returns the records read by partition and by value.
func (s *sc) sendReadBack(cfg *sarama.Config, msgs []*sarama.ProducerMessage) (map[int32][]*sarama.ConsumerMessage,
	map[string]*sarama.ConsumerMessage, error) {
	if err := send(cfg, msgs); err != nil {
		return nil, nil, err
	}
	return s.readBackExactly(cfg.Version, msgs)
}

// sendTo sends msgs with a 1.0.0.0 producer, message i to partition part(i) (a manual partitioner).
func sendTo(msgs []*sarama.ProducerMessage, part func(i int) int32) error {
	cfg := config(sarama.V1_0_0_0)
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	for i, m := range msgs {
		m.Partition = part(i)
	}
	return send(cfg, msgs)
}

func toPartition0(int) int32 { return 0 }
func roundRobin(i int) int32 { return int32(i % 3) }

// --- reading back -----------------------------------------------------------------------------

func newClient(version sarama.KafkaVersion) (sarama.Client, error) {
	c, err := sarama.NewClient([]string{bootstrap}, config(version))
	if err != nil {
		return nil, fmt.Errorf("NewClient: %v", err)
	}
	return c, nil
}

// endOffsets asks for the end offset (ListOffsets, latest) of each partition of topic.
func endOffsets(client sarama.Client, topic string) (map[int32]int64, error) {
	if err := client.RefreshMetadata(topic); err != nil {
		return nil, fmt.Errorf("metadata: %v", err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("partitions: %v", err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		off, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("end offset of partition %d: %v", p, err)
		}
		out[p] = off
	}
	return out, nil
}

func total(offsets map[int32]int64) int64 {
	n := int64(0)
	for _, o := range offsets {
		n += o
	}
	return n
}

// readBack reads, with a fresh client and consumer, every partition of topic from its
// beginning up to the end offset it has now. Returns the records per partition.
func (s *sc) readBack(version sarama.KafkaVersion) (map[int32][]*sarama.ConsumerMessage, error) {
	client, err := newClient(version)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	ends, err := endOffsets(client, s.topic)
	if err != nil {
		return nil, err
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("NewConsumer: %v", err)
	}
	defer consumer.Close()
	out := map[int32][]*sarama.ConsumerMessage{}
	for part, end := range ends {
		if end == 0 {
			continue
		}
		msgs, err := s.consume(consumer, part, sarama.OffsetOldest, func(m *sarama.ConsumerMessage) bool {
			return m.Offset >= end-1
		})
		if err != nil {
			return nil, err
		}
		out[part] = msgs
	}
	return out, nil
}

// consume reads partition from offset until done says the last record read is the last one wanted.
func (s *sc) consume(consumer sarama.Consumer, part int32, from int64,
	done func(*sarama.ConsumerMessage) bool) ([]*sarama.ConsumerMessage, error) {
	pc, err := consumer.ConsumePartition(s.topic, part, from)
	if err != nil {
		return nil, fmt.Errorf("ConsumePartition(%d, %d): %v", part, from, err)
	}
	defer pc.Close()
	var msgs []*sarama.ConsumerMessage
	for {
		select {
		case m := <-pc.Messages():
			msgs = append(msgs, m)
			if done(m) {
				return msgs, nil
			}
		case err := <-pc.Errors():
			return nil, fmt.Errorf("consuming partition %d: %v", part, err)
		case <-s.ctx.Done():
			return nil, fmt.Errorf("timed out consuming partition %d: %d records read", part, len(msgs))
		}
	}
}

// readBackExactly is readBack checking that the topic holds exactly the values of msgs, once each;
// it returns the records read by partition and by value.
func (s *sc) readBackExactly(version sarama.KafkaVersion, msgs []*sarama.ProducerMessage) (
	map[int32][]*sarama.ConsumerMessage, map[string]*sarama.ConsumerMessage, error) {
	read, err := s.readBack(version)
	if err != nil {
		return nil, nil, err
	}
	values := make([]string, len(msgs))
	for i, m := range msgs {
		v, _ := m.Value.Encode()
		values[i] = string(v)
	}
	got, err := strommatrix.ExactlyValues(read, values, record)
	if err != nil {
		return nil, nil, err
	}
	return read, got, nil
}

func record(m *sarama.ConsumerMessage) strommatrix.Record {
	return strommatrix.Record{Key: m.Key, Value: m.Value, Partition: m.Partition, Offset: m.Offset}
}

// rawBatches fetches (Fetch v4, straight from the partition's leader) the record batches of a
// partition from offset 0 to end, to look at batch attributes the consumer does not expose.
func (s *sc) rawBatches(client sarama.Client, part int32, end int64) ([]*sarama.RecordBatch, error) {
	leader, err := client.Leader(s.topic, part)
	if err != nil {
		return nil, fmt.Errorf("leader of partition %d: %v", part, err)
	}
	var batches []*sarama.RecordBatch
	for offset := int64(0); offset < end; {
		if s.expired() {
			return nil, fmt.Errorf("timed out fetching batches of partition %d at offset %d", part, offset)
		}
		req := &sarama.FetchRequest{Version: 4, MaxWaitTime: 100, MinBytes: 1, MaxBytes: 16 << 20}
		req.AddBlock(s.topic, part, offset, 8<<20)
		resp, err := leader.Fetch(req)
		if err != nil {
			return nil, fmt.Errorf("Fetch v4 of partition %d at %d: %v", part, offset, err)
		}
		block := resp.GetBlock(s.topic, part)
		if block == nil {
			return nil, fmt.Errorf("Fetch v4: no block for partition %d", part)
		}
		if block.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("Fetch v4 of partition %d at %d: %v", part, offset, block.Err)
		}
		progressed := false
		for _, rs := range block.RecordsSet {
			b := rs.RecordBatch
			if b == nil {
				return nil, fmt.Errorf("partition %d: a legacy message set where a record batch was expected", part)
			}
			if b.PartialTrailingRecord || b.LastOffset() < offset {
				continue
			}
			batches = append(batches, b)
			offset = b.LastOffset() + 1
			progressed = true
		}
		if !progressed {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return batches, nil
}

// eachBatch fetches, with a client of version, the record batches of every partition read back
// (up to the last record read) and checks each; it returns how many batches there were.
func (s *sc) eachBatch(version sarama.KafkaVersion, read map[int32][]*sarama.ConsumerMessage,
	check func(part int32, b *sarama.RecordBatch) error) (int, error) {
	client, err := newClient(version)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	n := 0
	for part, msgs := range read {
		batches, err := s.rawBatches(client, part, msgs[len(msgs)-1].Offset+1)
		if err != nil {
			return 0, err
		}
		for _, b := range batches {
			if err := check(part, b); err != nil {
				return 0, err
			}
		}
		n += len(batches)
	}
	return n, nil
}

// --- the scenarios ----------------------------------------------------------------------------

var scenarios = map[string]func(*sc) (string, error){
	"metadata":                      metadata,
	"produce.keys":                  produceKeys,
	"produce.headers":               produceHeaders,
	"produce.timestamps":            produceTimestamps,
	"produce.gzip":                  compressed(sarama.CompressionGZIP, "gzip", sarama.V1_0_0_0),
	"produce.snappy":                compressed(sarama.CompressionSnappy, "snappy", sarama.V1_0_0_0),
	"produce.lz4":                   compressed(sarama.CompressionLZ4, "lz4", sarama.V1_0_0_0),
	"produce.zstd":                  compressed(sarama.CompressionZSTD, "zstd", sarama.V2_1_0_0),
	"produce.acks0":                 acks(sarama.NoResponse),
	"produce.acks1":                 acks(sarama.WaitForLocal),
	"produce.acksall":               acks(sarama.WaitForAll),
	"produce.idempotent":            idempotent,
	"consume.assign_seek":           assignSeek,
	"consume.from_beginning":        fromBeginning,
	"consume.from_timestamp":        fromTimestamp,
	"group.subscribe_commit_resume": groupResume,
	"admin.topics":                  adminTopics,
	"admin.configs":                 adminConfigs,
	"admin.partitions":              adminPartitions,
}

func metadata(s *sc) (string, error) {
	client, err := newClient(sarama.V1_0_0_0)
	if err != nil {
		return "", err
	}
	defer client.Close()
	if err := client.RefreshMetadata(s.topic); err != nil {
		return "", fmt.Errorf("Metadata: %v", err)
	}
	parts, err := client.Partitions(s.topic)
	if err != nil {
		return "", fmt.Errorf("partitions of %s: %v", s.topic, err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	if fmt.Sprint(parts) != "[0 1 2]" {
		return "", fmt.Errorf("partitions %v, want [0 1 2]", parts)
	}
	listed := map[int32]string{}
	for _, b := range client.Brokers() {
		listed[b.ID()] = b.Addr()
	}
	for _, p := range parts {
		leader, err := client.Leader(s.topic, p)
		if err != nil {
			return "", fmt.Errorf("leader of partition %d: %v", p, err)
		}
		addr, ok := listed[leader.ID()]
		if !ok {
			return "", fmt.Errorf("partition %d: leader %d is not a listed broker (%v)", p, leader.ID(), listed)
		}
		if addr != bootstrap {
			return "", fmt.Errorf("partition %d: leader %d is at %s, bootstrap is %s", p, leader.ID(), addr, bootstrap)
		}
	}
	return fmt.Sprintf("3 partitions, leaders at %s", bootstrap), nil
}

func produceKeys(s *sc) (string, error) {
	cfg := config(sarama.V1_0_0_0) // the default hash partitioner
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 105; i++ {
		m := &sarama.ProducerMessage{Topic: s.topic, Value: sarama.StringEncoder(strommatrix.Value(i))}
		if i < 100 {
			m.Key = sarama.StringEncoder(strommatrix.Key(i))
		}
		msgs = append(msgs, m)
	}
	_, got, err := s.sendReadBack(cfg, msgs)
	if err != nil {
		return "", err
	}
	if err := strommatrix.CheckKeys(got, record); err != nil {
		return "", err
	}
	return "105 records read back once each; each key in one partition, in order; null keys null", nil
}

func produceHeaders(s *sc) (string, error) {
	cfg := config(sarama.V1_0_0_0)
	want := []sarama.RecordHeader{
		{Key: []byte("h1"), Value: []byte("a")},
		{Key: []byte("h1"), Value: []byte("b")},
		{Key: []byte("bin"), Value: []byte{0x00, 0xff, 0x01}},
	}
	msgs := plainMessages(s.topic, 10)
	for _, m := range msgs {
		m.Headers = want
	}
	_, got, err := s.sendReadBack(cfg, msgs)
	if err != nil {
		return "", err
	}
	for _, v := range strommatrix.Values(0, 10) {
		hs := got[v].Headers
		if len(hs) != len(want) {
			return "", fmt.Errorf("%s: %d headers, sent %d", v, len(hs), len(want))
		}
		for j, h := range hs {
			if !bytes.Equal(h.Key, want[j].Key) || !bytes.Equal(h.Value, want[j].Value) {
				return "", fmt.Errorf("%s: header %d is %q=%q, sent %q=%q", v, j, h.Key, h.Value, want[j].Key, want[j].Value)
			}
		}
	}
	return "10 records, headers h1=a, h1=b, bin=00ff01 read back in order, byte-exact", nil
}

func produceTimestamps(s *sc) (string, error) {
	cfg := config(sarama.V1_0_0_0)
	msgs := plainMessages(s.topic, 10)
	for i, m := range msgs {
		m.Timestamp = strommatrix.MsTime(strommatrix.T0 + int64(i)*1000)
	}
	read, got, err := s.sendReadBack(cfg, msgs)
	if err != nil {
		return "", err
	}
	for i, v := range strommatrix.Values(0, 10) {
		if ts := strommatrix.Ms(got[v].Timestamp); ts != strommatrix.T0+int64(i)*1000 {
			return "", fmt.Errorf("%s: timestamp %d, sent %d", v, ts, strommatrix.T0+int64(i)*1000)
		}
	}
	// The timestamp type is an attribute of the record batch: sarama's consumer does not expose it.
	if _, err := s.eachBatch(sarama.V1_0_0_0, read, func(part int32, b *sarama.RecordBatch) error {
		if b.LogAppendTime {
			return fmt.Errorf("partition %d: batch at offset %d has timestamp type LogAppendTime", part, b.FirstOffset)
		}
		return nil
	}); err != nil {
		return "", err
	}
	return "10 timestamps read back exactly, batches of type CreateTime", nil
}

func compressed(codec sarama.CompressionCodec, name string, version sarama.KafkaVersion) func(*sc) (string, error) {
	return func(s *sc) (string, error) {
		cfg := config(version)
		cfg.Producer.Compression = codec
		cfg.Producer.Flush.Messages = 100
		cfg.Producer.Flush.Frequency = 20 * time.Millisecond
		var msgs []*sarama.ProducerMessage
		for i := 0; i < 1000; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: s.topic,
				Value: sarama.StringEncoder(strommatrix.CompressibleValue(i))})
		}
		read, _, err := s.sendReadBack(cfg, msgs)
		if err != nil {
			return "", err
		}
		// The records really travelled compressed: the stored batches carry the codec.
		nBatches, err := s.eachBatch(version, read, func(part int32, b *sarama.RecordBatch) error {
			if b.Codec != codec {
				return fmt.Errorf("partition %d: batch at offset %d stored with codec %d, want %s", part,
					b.FirstOffset, b.Codec, name)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("1000 records read back byte-exact; all %d batches %s-compressed", nBatches, name), nil
	}
}

func acks(required sarama.RequiredAcks) func(*sc) (string, error) {
	return func(s *sc) (string, error) {
		cfg := config(sarama.V1_0_0_0)
		cfg.Producer.RequiredAcks = required
		msgs := plainMessages(s.topic, 200)
		if err := send(cfg, msgs); err != nil {
			return "", err
		}
		client, err := newClient(sarama.V1_0_0_0)
		if err != nil {
			return "", err
		}
		defer client.Close()
		// With acks=0 nothing says when the records are in: wait (bounded) for all 200.
		if err := strommatrix.WaitUntil(s.ctx, "the 200 records to be in the log", func() (bool, error) {
			ends, err := endOffsets(client, s.topic)
			return err == nil && total(ends) >= 200, err
		}); err != nil {
			return "", err
		}
		if _, _, err := s.readBackExactly(sarama.V1_0_0_0, msgs); err != nil {
			return "", err
		}
		return fmt.Sprintf("200 records with acks=%d read back once each", required), nil
	}
}

func idempotent(s *sc) (string, error) {
	cfg := config(sarama.V1_0_0_0)
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	read, _, err := s.sendReadBack(cfg, plainMessages(s.topic, 200))
	if err != nil {
		return "", err
	}
	for part, msgs := range read {
		for i, m := range msgs {
			if m.Offset != int64(i) {
				return "", fmt.Errorf("partition %d: record %d at offset %d, offsets not dense from 0", part, i, m.Offset)
			}
		}
	}
	// The producer really was idempotent: its batches carry a producer id.
	if _, err := s.eachBatch(sarama.V1_0_0_0, read, func(part int32, b *sarama.RecordBatch) error {
		if b.ProducerID < 0 {
			return fmt.Errorf("partition %d: batch at offset %d has no producer id", part, b.FirstOffset)
		}
		return nil
	}); err != nil {
		return "", err
	}
	return "200 records read back once each, offsets dense from 0, batches carry a producer id", nil
}

func assignSeek(s *sc) (string, error) {
	if err := sendTo(plainMessages(s.topic, 50), toPartition0); err != nil {
		return "", err
	}
	consumer, err := sarama.NewConsumer([]string{bootstrap}, config(sarama.V1_0_0_0))
	if err != nil {
		return "", fmt.Errorf("NewConsumer: %v", err)
	}
	defer consumer.Close()
	got, err := s.consume(consumer, 0, 20, func(m *sarama.ConsumerMessage) bool { return m.Offset >= 49 })
	if err != nil {
		return "", err
	}
	if err := strommatrix.CheckSeek(20, got, record); err != nil {
		return "", err
	}
	return "seek to 20 on partition 0: offsets 20..49 with values v20..v49, in order", nil
}

func fromBeginning(s *sc) (string, error) {
	if err := sendTo(plainMessages(s.topic, 30), roundRobin); err != nil {
		return "", err
	}
	// A consumer started at OffsetOldest on every partition, reading until it has 30 records
	// (and a little longer, to see any extra record).
	client, err := newClient(sarama.V1_0_0_0)
	if err != nil {
		return "", err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return "", fmt.Errorf("NewConsumer: %v", err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(s.topic)
	if err != nil {
		return "", fmt.Errorf("partitions: %v", err)
	}
	merged := make(chan *sarama.ConsumerMessage, 100)
	errs := make(chan error, 10)
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(s.topic, p, sarama.OffsetOldest)
		if err != nil {
			return "", fmt.Errorf("ConsumePartition(%d, oldest): %v", p, err)
		}
		defer pc.Close()
		go func(pc sarama.PartitionConsumer) {
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					merged <- m
				case err, ok := <-pc.Errors():
					if ok {
						errs <- err
					}
				case <-s.ctx.Done():
					return
				}
			}
		}(pc)
	}
	read := map[int32][]*sarama.ConsumerMessage{}
	n := 0
	var grace <-chan time.Time // nil (never ready) until 30 records are in
collect:
	for {
		select {
		case m := <-merged:
			read[m.Partition] = append(read[m.Partition], m)
			n++
			if n == 30 {
				grace = time.After(500 * time.Millisecond)
			}
		case err := <-errs:
			return "", fmt.Errorf("consuming: %v", err)
		case <-grace:
			break collect
		case <-s.ctx.Done():
			return "", fmt.Errorf("timed out: %d of 30 records read", n)
		}
	}
	if _, err := strommatrix.ExactlyValues(read, strommatrix.Values(0, 30), record); err != nil {
		return "", err
	}
	return "OffsetOldest on the 3 partitions: all 30 records, once each", nil
}

func fromTimestamp(s *sc) (string, error) {
	msgs := plainMessages(s.topic, 20)
	for i, m := range msgs {
		m.Timestamp = strommatrix.MsTime(strommatrix.T0 + int64(i)*1000)
	}
	if err := sendTo(msgs, toPartition0); err != nil {
		return "", err
	}
	client, err := newClient(sarama.V1_0_0_0)
	if err != nil {
		return "", err
	}
	defer client.Close()
	offset, err := client.GetOffset(s.topic, 0, strommatrix.T0+10000) // ListOffsets v1
	if err != nil {
		return "", fmt.Errorf("GetOffset(T0+10000): %v", err)
	}
	if offset != 10 {
		// Say what the broker stored: the time lookup goes by the batches' max timestamps.
		var maxTs []int64
		if batches, err := s.rawBatches(client, 0, 20); err == nil {
			for _, b := range batches {
				if b.MaxTimestamp.IsZero() {
					maxTs = append(maxTs, -1) // sarama decodes a negative timestamp as the zero time
				} else {
					maxTs = append(maxTs, strommatrix.Ms(b.MaxTimestamp))
				}
			}
		}
		return "", fmt.Errorf("GetOffset(T0+10000) (ListOffsets v1) = %d, want 10; the stored batches' max_timestamp: %v "+
			"(sarama 1.22 sends -1 there)", offset, maxTs)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return "", fmt.Errorf("NewConsumer: %v", err)
	}
	defer consumer.Close()
	got, err := s.consume(consumer, 0, offset, func(*sarama.ConsumerMessage) bool { return true })
	if err != nil {
		return "", err
	}
	if got[0].Offset != 10 || string(got[0].Value) != strommatrix.Value(10) {
		return "", fmt.Errorf("first record from offset %d: offset %d value %q, want 10, v10", offset, got[0].Offset, got[0].Value)
	}
	return "GetOffset(T0+10000) = 10; consuming from there starts with v10", nil
}

// --- group.subscribe_commit_resume --------------------------------------------------------------

type groupMember struct {
	mu     sync.Mutex
	values []string
	errs   []error
	cg     sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
}

func (g *groupMember) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (g *groupMember) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (g *groupMember) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		g.mu.Lock()
		g.values = append(g.values, string(m.Value))
		g.mu.Unlock()
		sess.MarkMessage(m, "")
	}
	return nil
}

func (g *groupMember) read() ([]string, []error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.values...), append([]error(nil), g.errs...)
}

func startGroupMember(s *sc, group string) (*groupMember, error) {
	cfg := config(sarama.V1_0_0_0)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cg, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
	if err != nil {
		return nil, fmt.Errorf("NewConsumerGroup: %v", err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	g := &groupMember{cg: cg, cancel: cancel, done: make(chan struct{})}
	go func() {
		for err := range cg.Errors() {
			g.mu.Lock()
			g.errs = append(g.errs, err)
			g.mu.Unlock()
		}
	}()
	go func() {
		defer close(g.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{s.topic}, g); err != nil {
				g.mu.Lock()
				g.errs = append(g.errs, fmt.Errorf("Consume: %v", err))
				g.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(300 * time.Millisecond):
				}
			}
		}
	}()
	return g, nil
}

// startReading starts a member of group and waits (what) until it has read n records; when it
// does not, the member is stopped.
func startReading(s *sc, group, name string, n int, what string) (*groupMember, error) {
	g, err := startGroupMember(s, group)
	if err != nil {
		return nil, err
	}
	if err := strommatrix.WaitUntil(s.ctx, what, func() (bool, error) {
		vs, errs := g.read()
		if len(errs) > 0 {
			return false, errs[0]
		}
		return len(vs) >= n, nil
	}); err != nil {
		g.stop(s)
		return nil, fmt.Errorf("consumer %s: %v", name, err)
	}
	return g, nil
}

// stop ends the member's session (its marked offsets are committed on the way out) and closes it.
func (g *groupMember) stop(s *sc) error {
	g.cancel()
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		return errors.New("Consume did not return after its context was cancelled")
	}
	closed := make(chan error, 1)
	go func() { closed <- g.cg.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			return fmt.Errorf("Close: %v", err)
		}
	case <-time.After(15 * time.Second):
		return errors.New("Close did not return")
	}
	return nil
}

// committed asks the group coordinator (OffsetFetch v1) for the group's offsets of topic.
func committed(client sarama.Client, group, topic string, parts []int32) (map[int32]int64, error) {
	if err := client.RefreshCoordinator(group); err != nil {
		return nil, fmt.Errorf("FindCoordinator: %v", err)
	}
	coord, err := client.Coordinator(group)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %v", err)
	}
	req := &sarama.OffsetFetchRequest{Version: 1, ConsumerGroup: group}
	for _, p := range parts {
		req.AddPartition(topic, p)
	}
	resp, err := coord.FetchOffset(req)
	if err != nil {
		return nil, fmt.Errorf("OffsetFetch: %v", err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		block := resp.GetBlock(topic, p)
		if block == nil {
			return nil, fmt.Errorf("OffsetFetch: no block for partition %d", p)
		}
		if block.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("OffsetFetch partition %d: %v", p, block.Err)
		}
		out[p] = block.Offset
	}
	return out, nil
}

func groupResume(s *sc) (string, error) {
	group := s.topic + "-group"
	if err := sendTo(plainMessages(s.topic, 40), roundRobin); err != nil {
		return "", err
	}
	client, err := newClient(sarama.V1_0_0_0)
	if err != nil {
		return "", err
	}
	defer client.Close()
	ends, err := endOffsets(client, s.topic)
	if err != nil {
		return "", err
	}
	parts := []int32{0, 1, 2}

	a, err := startReading(s, group, "A", 40, "consumer A to read the 40 records")
	if err != nil {
		return "", err
	}
	if err := strommatrix.WaitUntil(s.ctx, "consumer A's offsets to be committed", func() (bool, error) {
		c, err := committed(client, group, s.topic, parts)
		return err == nil && fmt.Sprint(c) == fmt.Sprint(ends), err
	}); err != nil {
		a.stop(s)
		return "", fmt.Errorf("consumer A: %v", err)
	}
	if err := a.stop(s); err != nil {
		return "", fmt.Errorf("consumer A: %v", err)
	}
	aValues, aErrs := a.read()
	if len(aErrs) > 0 {
		return "", fmt.Errorf("consumer A: sarama reported %v", aErrs[0])
	}
	if err := strommatrix.ExactlyStrings(aValues, strommatrix.Values(0, 40)); err != nil {
		return "", fmt.Errorf("consumer A: %v", err)
	}

	second := make([]*sarama.ProducerMessage, 10)
	for i := range second {
		second[i] = &sarama.ProducerMessage{Topic: s.topic, Value: sarama.StringEncoder(strommatrix.Value(40 + i))}
	}
	if err := sendTo(second, roundRobin); err != nil {
		return "", err
	}

	b, err := startReading(s, group, "B", 10, "consumer B to read 10 records")
	if err != nil {
		return "", err
	}
	time.Sleep(500 * time.Millisecond) // any record beyond the 10 would show up now
	stopErr := b.stop(s)
	bValues, bErrs := b.read()
	if len(bErrs) > 0 {
		return "", fmt.Errorf("consumer B: sarama reported %v", bErrs[0])
	}
	if stopErr != nil {
		return "", fmt.Errorf("consumer B: %v", stopErr)
	}
	if err := strommatrix.ExactlyStrings(bValues, strommatrix.Values(40, 50)); err != nil {
		return "", fmt.Errorf("consumer B: %v", err)
	}
	return "A read 40 and committed; B in the same group read exactly the 10 new records", nil
}

// --- admin ------------------------------------------------------------------------------------

func newAdmin() (sarama.ClusterAdmin, error) {
	admin, err := sarama.NewClusterAdmin([]string{bootstrap}, config(sarama.V1_0_0_0))
	if err != nil {
		return nil, fmt.Errorf("NewClusterAdmin: %v", err)
	}
	return admin, nil
}

// partitionsListed refreshes the metadata of all topics (a request for named topics may create
// them) and says how many partitions topic has, or -1 when it is not listed.
func partitionsListed(client sarama.Client, topic string) (int, error) {
	if err := client.RefreshMetadata(); err != nil {
		return 0, err
	}
	topics, err := client.Topics()
	if err != nil {
		return 0, err
	}
	for _, t := range topics {
		if t == topic {
			parts, err := client.Partitions(topic)
			if err != nil {
				return 0, err
			}
			return len(parts), nil
		}
	}
	return -1, nil
}

// waitPartitions waits (what) until the metadata lists topic with want partitions.
func (s *sc) waitPartitions(client sarama.Client, topic string, want int, what string) error {
	n := 0
	if err := strommatrix.WaitUntil(s.ctx, what, func() (bool, error) {
		var err error
		n, err = partitionsListed(client, topic)
		return err == nil && n == want, err
	}); err != nil {
		return fmt.Errorf("%v (last seen: %d partitions)", err, n)
	}
	return nil
}

func adminTopics(s *sc) (string, error) {
	admin, err := newAdmin()
	if err != nil {
		return "", err
	}
	defer admin.Close()
	client, err := newClient(sarama.V1_0_0_0)
	if err != nil {
		return "", err
	}
	defer client.Close()
	name := s.topic + "-new"
	if err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
		return "", fmt.Errorf("CreateTopic: %v", err)
	}
	if err := s.waitPartitions(client, name, 2, name+" listed with 2 partitions"); err != nil {
		return "", err
	}
	if err := admin.DeleteTopic(name); err != nil {
		return "", fmt.Errorf("DeleteTopic: %v", err)
	}
	if err := strommatrix.WaitUntil(s.ctx, name+" no longer listed", func() (bool, error) {
		n, err := partitionsListed(client, name)
		return err == nil && n == -1, err
	}); err != nil {
		return "", err
	}
	return "created with 2 partitions (CreateTopics v2), listed, deleted (DeleteTopics v1), gone", nil
}

func retentionMs(admin sarama.ClusterAdmin, topic string) (string, error) {
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		return "", fmt.Errorf("DescribeConfig (sarama 1.22 always sends DescribeConfigs v0): %v", err)
	}
	for _, e := range entries {
		if e.Name == "retention.ms" {
			return e.Value, nil
		}
	}
	return "", fmt.Errorf("DescribeConfig: no retention.ms among %d entries", len(entries))
}

func adminConfigs(s *sc) (string, error) {
	admin, err := newAdmin()
	if err != nil {
		return "", err
	}
	defer admin.Close()
	v, err := retentionMs(admin, s.topic)
	if err != nil {
		return "", err
	}
	if v != "604800000" {
		return "", fmt.Errorf("retention.ms is %q, want 604800000", v)
	}
	newValue := "3600000"
	if err := admin.AlterConfig(sarama.TopicResource, s.topic, map[string]*string{"retention.ms": &newValue}, false); err != nil {
		return "", fmt.Errorf("AlterConfig: %v", err)
	}
	if v, err = retentionMs(admin, s.topic); err != nil {
		return "", err
	}
	if v != newValue {
		return "", fmt.Errorf("after AlterConfig retention.ms is %q, want %s", v, newValue)
	}
	return "retention.ms 604800000, altered to 3600000, described again: 3600000", nil
}

func adminPartitions(s *sc) (string, error) {
	admin, err := newAdmin()
	if err != nil {
		return "", err
	}
	defer admin.Close()
	client, err := newClient(sarama.V1_0_0_0)
	if err != nil {
		return "", err
	}
	defer client.Close()
	if err := admin.CreatePartitions(s.topic, 5, nil, false); err != nil {
		return "", fmt.Errorf("CreatePartitions: %v", err)
	}
	if err := s.waitPartitions(client, s.topic, 5, "5 partitions in the metadata"); err != nil {
		return "", err
	}
	return "grown from 3 to 5 partitions (CreatePartitions v0), metadata shows 5", nil
}

// --- the request recorder ---------------------------------------------------------------------

var (
	sentMu sync.Mutex
	sent   = map[[2]int16]bool{} // (API key, version) sent since the scenario started
)

// recordSent is the Sent of every client's strommatrix.RecordingDialer.
func recordSent(key, version int16) {
	sentMu.Lock()
	sent[[2]int16{key, version}] = true
	sentMu.Unlock()
}

// takeSent says which requests were sent since its last call, and forgets them.
func takeSent() string {
	sentMu.Lock()
	defer sentMu.Unlock()
	var keys [][2]int16
	for k := range sent {
		keys = append(keys, k)
	}
	sent = map[[2]int16]bool{}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s v%d", strommatrix.APIName(k[0]), k[1]))
	}
	return strings.Join(parts, ", ")
}

// --- main -------------------------------------------------------------------------------------

func main() {
	sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	strommatrix.Main(strommatrix.Program[sc]{
		Name: "sarama_matrix", Client: "sarama", Version: saramaVersion, Bootstrap: &bootstrap,
		Scenarios: scenarios,
		New:       func(ctx context.Context, topic string) *sc { return &sc{ctx: ctx, topic: topic} },
		// A failed scenario's detail ends with the requests sent during it.
		BeforeEach: func() { takeSent() },
		FailDetail: func(err error) string { return fmt.Sprintf("%v [requests sent: %s]", err, takeSent()) },
	})
}
