package command_test

import (
	"encoding/json"
	"testing"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Benchmarks back the choice of msgpack for the Raft payload against
// encoding/json of the same structs. Entry sizes are reported as "bytes".
//
//	go test ./fsm/command -run=^$ -bench=. -benchtime=200ms -benchmem

func benchRegister() *command.RegisterInstance {
	in := fullInstance()
	in.Metadata = map[string]string{"zone": "a", "rack": "r1", "version": "1.4.2"}
	in.Checks = []registry.Check{{Kind: registry.CheckTTL, TTL: "10s", Status: registry.StatusPassing}}
	return &command.RegisterInstance{Meta: testMeta(), Instance: in}
}

func benchConfigSet() *command.ConfigSet {
	return &command.ConfigSet{Meta: testMeta(), Entries: []command.ConfigOp{{Key: "app/db/pool", Value: value256(), CAS: u64(41)}}}
}

func benchEncode(b *testing.B, t command.Type, msg any) {
	c := command.NewCodec()
	out, err := c.Encode(t, msg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Encode(t, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(out)), "bytes")
}

func benchDecode(b *testing.B, t command.Type, msg any) {
	c := command.NewCodec()
	data, err := c.Encode(t, msg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := c.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "bytes")
}

func benchEncodeJSON(b *testing.B, msg any) {
	out, err := json.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := json.Marshal(msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(out)+2), "bytes") // + the same two header bytes
}

func benchDecodeJSON[T any](b *testing.B, msg *T) {
	data, err := json.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var out T
		if err := json.Unmarshal(data, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)+2), "bytes")
}

func BenchmarkEncodeRegister(b *testing.B) {
	benchEncode(b, command.TypeRegisterInstance, benchRegister())
}

func BenchmarkDecodeRegister(b *testing.B) {
	benchDecode(b, command.TypeRegisterInstance, benchRegister())
}

func BenchmarkEncodeConfigSet(b *testing.B) {
	benchEncode(b, command.TypeConfigSet, benchConfigSet())
}

func BenchmarkDecodeConfigSet(b *testing.B) {
	benchDecode(b, command.TypeConfigSet, benchConfigSet())
}

func BenchmarkEncodeRegisterJSON(b *testing.B) { benchEncodeJSON(b, benchRegister()) }

func BenchmarkDecodeRegisterJSON(b *testing.B) { benchDecodeJSON(b, benchRegister()) }

func BenchmarkEncodeConfigSetJSON(b *testing.B) { benchEncodeJSON(b, benchConfigSet()) }

func BenchmarkDecodeConfigSetJSON(b *testing.B) { benchDecodeJSON(b, benchConfigSet()) }
