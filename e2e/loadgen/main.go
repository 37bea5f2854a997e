// Command loadgen: a closed-loop HTTP/1.1 load generator for e2e/bench, because wrk (4.1,
// Debian) cannot time HEAD: it waits for the body that a HEAD answer announces but never
// sends. Each connection sends one request, reads the whole answer, and sends the next, for
// the duration; it prints requests per second and latency percentiles.
//
//	loadgen -c 64 -d 10s [-m HEAD] [-H 'Name: value']... http://127.0.0.1:PORT/path
//
// Only what the benchmark's servers answer is parsed: a status line, headers, and a body of
// Content-Length bytes (none for HEAD, 204 or 304). Any other status than 2xx is counted as
// an error and makes the exit status 1: a benchmark of error answers measures nothing.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	conns := flag.Int("c", 64, "connections")
	duration := flag.Duration("d", 10*time.Second, "duration")
	method := flag.String("m", "GET", "method")
	var extra headers
	flag.Var(&extra, "H", "request header (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: loadgen [-c N] [-d DURATION] [-m METHOD] [-H HEADER]... URL")
		os.Exit(2)
	}
	u, err := url.Parse(flag.Arg(0))
	if err != nil || u.Scheme != "http" {
		fmt.Fprintln(os.Stderr, "loadgen: an http:// URL is required")
		os.Exit(2)
	}
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\n", *method, u.RequestURI(), u.Host)
	for _, h := range extra {
		req.WriteString(h + "\r\n")
	}
	req.WriteString("\r\n")
	request := []byte(req.String())
	head := *method == "HEAD"

	var (
		mu        sync.Mutex
		latencies []time.Duration
		errors    int
		failure   error
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(*duration)
	start := time.Now()
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine, bad, err := run(u.Host, request, head, deadline)
			mu.Lock()
			latencies = append(latencies, mine...)
			errors += bad
			if err != nil && failure == nil {
				failure = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failure != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", failure)
		os.Exit(1)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	fmt.Printf("requests %d\n", len(latencies))
	fmt.Printf("req/s %.1f\n", float64(len(latencies))/elapsed.Seconds())
	fmt.Printf("p50 ms %.3f\n", pct(0.50))
	fmt.Printf("p99 ms %.3f\n", pct(0.99))
	fmt.Printf("errors %d\n", errors)
	if errors > 0 {
		os.Exit(1)
	}
}

// run drives one connection until the deadline: the latency of each answer, and how many
// were not 2xx. A server that closes an idle or used-up keep-alive connection (nginx does
// after keepalive_requests) is dialled again, and the request it dropped is sent again.
func run(host string, request []byte, head bool, deadline time.Time) ([]time.Duration, int, error) {
	var (
		out []time.Duration
		bad int
		c   net.Conn
		r   *bufio.Reader
	)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	redials := 0
	for time.Now().Before(deadline) {
		if c == nil {
			var err error
			if c, err = net.Dial("tcp", host); err != nil {
				return out, bad, err
			}
			r = bufio.NewReaderSize(c, 64*1024)
		}
		t0 := time.Now()
		_, err := c.Write(request)
		status := 0
		if err == nil {
			status, err = answer(r, head)
		}
		if err != nil {
			c.Close()
			c = nil
			// A connection that fails again at once is not a closed keep-alive.
			if redials++; redials > 3 {
				return out, bad, err
			}
			continue
		}
		redials = 0
		out = append(out, time.Since(t0))
		if status < 200 || status > 299 {
			bad++
		}
	}
	return out, bad, nil
}

// answer reads one response and returns its status.
func answer(r *bufio.Reader, head bool) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(line))
	if len(fields) < 2 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length := int64(0)
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		s := strings.TrimRight(string(h), "\r\n")
		if s == "" {
			break
		}
		name, value, _ := strings.Cut(s, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			if length, err = strconv.ParseInt(strings.TrimSpace(value), 10, 64); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
		case "transfer-encoding":
			return 0, fmt.Errorf("chunked answers are not supported")
		}
	}
	if head || status == 204 || status == 304 {
		return status, nil
	}
	_, err = io.CopyN(io.Discard, r, length)
	return status, err
}
