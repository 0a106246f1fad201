package registry

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// stringIndex indexes a string of a T, read by a function instead of by
// field name: memdb's StringFieldIndex finds the field through reflect
// on every insert and lookup (FieldByName allocates), which was 6% of
// the bytes a config write allocates. Same keys as StringFieldIndex: the
// string and a 0 byte; an empty string is not indexed.
type stringIndex[T any] struct {
	field func(*T) string
}

func (x stringIndex[T]) FromObject(raw any) (bool, []byte, error) {
	o, ok := raw.(*T)
	if !ok {
		return false, nil, fmt.Errorf("index: %T is not a %T", raw, o)
	}
	v := x.field(o)
	if v == "" {
		return false, nil, nil
	}
	b := make([]byte, len(v)+1)
	copy(b, v)
	return true, b, nil
}

func (stringIndex[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index: one argument expected, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("index: the argument must be a string: %#v", args[0])
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b, nil
}

func (x stringIndex[T]) PrefixFromArgs(args ...any) ([]byte, error) {
	b, err := x.FromArgs(args...)
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil
}

var (
	_ memdb.SingleIndexer = stringIndex[Service]{}
	_ memdb.PrefixIndexer = stringIndex[Service]{}
)

// byString returns a stringIndex reading field.
func byString[T any](field func(*T) string) stringIndex[T] { return stringIndex[T]{field: field} }
