package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Read parses a JSON-lines history.
func Read(r io.Reader) ([]Op, error) {
	var ops []Op
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var op Op
		if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
			return nil, fmt.Errorf("history line %d: %w", line, err)
		}
		ops = append(ops, op)
	}
	return ops, sc.Err()
}

// ReadFile parses the history file at path.
func ReadFile(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}

// Filter returns the ops of one workload.
func Filter(ops []Op, workload string) []Op {
	var out []Op
	for _, op := range ops {
		if op.Workload == workload {
			out = append(out, op)
		}
	}
	return out
}
