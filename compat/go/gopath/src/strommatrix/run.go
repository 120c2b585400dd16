// Package strommatrix is what the Go programs of compat/go share: the compatibility-matrix
// contract (compat/matrix/README.md: command line, JSON lines, each scenario wrapped with its
// time limit), the values the scenarios send and the comparisons of what they read back, and a
// net.Conn that records the (API key, version) of every request a client writes.
//
// compat/go is built in GOPATH mode (scripts/setup-clients): this package is found through the
// GOPATH entry compat/go/gopath, and it imports nothing but the standard library, so that the
// programs of every client library can use it.
package strommatrix

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

const (
	ScenarioLimit = 60 * time.Second // the contract's bound per scenario
	OwnLimit      = 55 * time.Second // a scenario's own deadline inside it, to report a precise detail
)

// NotApplicable is the error of a scenario that the client's API cannot express (status "n/a").
type NotApplicable string

func (n NotApplicable) Error() string { return string(n) }

// Result is one scenario's line of output.
type Result struct {
	Scenario string `json:"scenario"`
	Status   string `json:"status"`
	Detail   string `json:"detail"`
}

type clientLine struct {
	Client  string `json:"client"`
	Version string `json:"version"`
}

func emit(v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(b, '\n'))
}

// Program describes one matrix program. S is its per-scenario context, which New makes from the
// scenario's deadline-bound context and topic.
type Program[S any] struct {
	Name      string // the program's name, for its usage and stderr lines
	Client    string // its row in the matrix
	Version   string // the client library's version
	Bootstrap *string
	Scenarios map[string]func(*S) (string, error)
	New       func(ctx context.Context, topic string) *S
	// BeforeEach, when set, runs before each scenario.
	BeforeEach func()
	// FailDetail, when set, makes a failed scenario's detail of its error (else err.Error()).
	FailDetail func(err error) string
}

// Main runs the program as the contract says: it reads the command line into p.Bootstrap, prints
// the client line, then runs each scenario asked and prints its result line.
func Main[S any](p Program[S]) {
	if len(os.Args) < 4 {
		fmt.Fprintf(os.Stderr, "usage: %s <bootstrap host:port> <topic prefix> <scenario> [<scenario> ...]\n", p.Name)
		os.Exit(2)
	}
	*p.Bootstrap = os.Args[1]
	prefix := os.Args[2]
	emit(clientLine{p.Client, p.Version})
	for _, id := range os.Args[3:] {
		began := time.Now()
		r := run(p, id, prefix)
		fmt.Fprintf(os.Stderr, "%s: %s: %s in %.1f s: %s\n", p.Name, id, r.Status, time.Since(began).Seconds(),
			r.Detail)
		emit(r)
	}
}

type outcome struct {
	detail string
	err    error
}

// run runs one scenario on its topic within OwnLimit (its own deadline) and ScenarioLimit (the
// contract's); a panic is a failure.
func run[S any](p Program[S], id, prefix string) Result {
	fn, ok := p.Scenarios[id]
	if !ok {
		return Result{id, "fail", "unknown scenario"}
	}
	if p.BeforeEach != nil {
		p.BeforeEach()
	}
	ctx, cancel := context.WithTimeout(context.Background(), OwnLimit)
	defer cancel()
	s := p.New(ctx, prefix+strings.Replace(id, ".", "-", -1))
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- outcome{"", fmt.Errorf("panic: %v", r)}
			}
		}()
		d, err := fn(s)
		done <- outcome{d, err}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(ScenarioLimit):
		o = outcome{"", fmt.Errorf("no result within %.0f s", ScenarioLimit.Seconds())}
	}
	if o.err == nil {
		return Result{id, "pass", o.detail}
	}
	if na, ok := o.err.(NotApplicable); ok {
		return Result{id, "n/a", string(na)}
	}
	if p.FailDetail != nil {
		return Result{id, "fail", p.FailDetail(o.err)}
	}
	return Result{id, "fail", o.err.Error()}
}

// WaitUntil polls cond every 100 ms until it holds or ctx ends; the error then names what was
// awaited and cond's last error.
func WaitUntil(ctx context.Context, what string, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("timed out waiting for %s (last error: %v)", what, last)
			}
			return fmt.Errorf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
