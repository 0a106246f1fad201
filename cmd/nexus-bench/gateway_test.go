package main

import (
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestParseVariants(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []agentVariant
		err  string
	}{
		{in: "", want: nil},
		{in: defaultVariants(), want: []agentVariant{
			{name: "onepercpu", env: []string{"GOMAXPROCS=" + strconv.Itoa(runtime.NumCPU())}},
		}},
		{in: "plain:NEXUS_GATEWAY_SOCKET_IO=plain,gmp1:GOMAXPROCS=1", want: []agentVariant{
			{name: "plain", env: []string{"NEXUS_GATEWAY_SOCKET_IO=plain"}},
			{name: "gmp1", env: []string{"GOMAXPROCS=1"}},
		}},
		{in: "both:GOMAXPROCS=1;NEXUS_GATEWAY_SOCKET_IO=plain", want: []agentVariant{
			{name: "both", env: []string{"GOMAXPROCS=1", "NEXUS_GATEWAY_SOCKET_IO=plain"}},
		}},
		{in: "noenv", err: "NAME:VAR=VALUE"},
		{in: ":A=1", err: "NAME:VAR=VALUE"},
		{in: "a:A=1,a:B=2", err: "unique"},
		{in: "a:novalue", err: `"novalue" is not VAR=VALUE`},
		{in: "a:=1", err: "not VAR=VALUE"},
	} {
		got, err := parseVariants(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestShiftPort(t *testing.T) {
	if got, err := shiftPort("127.0.0.1:29080", 20); err != nil || got != "127.0.0.1:29100" {
		t.Fatalf("shiftPort: %q, %v", got, err)
	}
	if _, err := shiftPort("nohost", 1); err == nil {
		t.Fatal("shiftPort accepted an address without a port")
	}
}
