// labgo: benign Go workloads for the minerlens lab (built once with the Go toolchain into the lab cache;
// standard library only, no network access at build or run time).
//
//	labgo hash  -goroutines N -log F                    N goroutines hash (double SHA-256 over a header
//	                                                    with a moving nonce); GOMAXPROCS bounds the cores
//	labgo queue -addr H:P -queue Q -results R -log F    a job-queue worker: one Redis connection, BLPOP a
//	            -workers N                              batch of jobs, stretch each key (iterated SHA-256)
//	                                                    on N goroutines, RPUSH the results, again
//	labgo chan  -goroutines N -log F -work W            a pipeline of N goroutines passing messages over
//	                                                    channels with W SHA-256 blocks of work per hop,
//	                                                    and tickers: the Go scheduler parks and wakes Ms
//
// Every 2 s a line "<seconds> <total-operations>" is appended to the log. Runs until killed.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var ops atomic.Int64

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: labgo hash|queue|chan [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	goroutines := fs.Int("goroutines", 64, "goroutines")
	logPath := fs.String("log", "", "progress log")
	addr := fs.String("addr", "127.0.0.1:6379", "redis address (queue)")
	queue := fs.String("queue", "jobs", "job list (queue)")
	results := fs.String("results", "results", "result list (queue)")
	workers := fs.Int("workers", 2, "compute goroutines (queue)")
	work := fs.Int("work", 16, "SHA-256 blocks per hop (chan)")
	if err := fs.Parse(os.Args[2:]); err != nil || *logPath == "" {
		fmt.Fprintln(os.Stderr, "a -log is required")
		os.Exit(2)
	}
	go report(*logPath)
	var err error
	switch os.Args[1] {
	case "hash":
		hash(*goroutines)
	case "queue":
		err = queueWorker(*addr, *queue, *results, *workers)
	case "chan":
		pipeline(*goroutines, *work)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "labgo:", err)
		os.Exit(1)
	}
}

func report(path string) {
	t0 := time.Now()
	for range time.Tick(2 * time.Second) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "labgo: log:", err)
			os.Exit(1)
		}
		fmt.Fprintf(f, "%.1f %d\n", time.Since(t0).Seconds(), ops.Load())
		f.Close()
	}
}

func hash(n int) {
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			var header [80]byte
			header[0] = byte(id)
			for nonce := uint32(0); ; nonce++ {
				binary.LittleEndian.PutUint32(header[76:], nonce)
				first := sha256.Sum256(header[:])
				_ = sha256.Sum256(first[:])
				if nonce%1024 == 1023 {
					ops.Add(1024)
				}
			}
		}(g)
	}
	wg.Wait()
}

// stretch is the job: iterated SHA-256 of a seed, as a key-derivation or content-proof service does.
func stretch(seed string, rounds int) string {
	h := sha256.Sum256([]byte(seed))
	for i := 1; i < rounds; i++ {
		h = sha256.Sum256(h[:])
	}
	return hex.EncodeToString(h[:])
}

type resp struct {
	r *bufio.Reader
	w io.Writer
}

func (c *resp) send(args ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_, err := io.WriteString(c.w, b.String())
	return err
}

func (c *resp) line() (string, error) {
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// reply reads one reply: nil for a null, the strings of an array (or of a single bulk/simple string).
func (c *resp) reply() ([]string, error) {
	head, err := c.line()
	if err != nil {
		return nil, err
	}
	if head == "" {
		return nil, errors.New("empty reply")
	}
	switch head[0] {
	case '-':
		return nil, errors.New(head[1:])
	case '+', ':':
		return []string{head[1:]}, nil
	case '$':
		n, err := strconv.Atoi(head[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return []string{string(buf[:n])}, nil
	case '*':
		n, err := strconv.Atoi(head[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]string, 0, n)
		for i := 0; i < n; i++ {
			item, err := c.reply()
			if err != nil {
				return nil, err
			}
			out = append(out, item...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", head)
}

func queueWorker(addr, queue, results string, workers int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	c := &resp{bufio.NewReader(conn), conn}
	for {
		if err := c.send("BLPOP", queue, "5"); err != nil {
			return err
		}
		got, err := c.reply()
		if err != nil {
			return err
		}
		if got == nil {
			continue // no job within 5 s: ask again, on the same connection
		}
		jobs := []string{got[1]}
		if workers > 1 {
			if err := c.send("LPOP", queue, strconv.Itoa(workers-1)); err != nil {
				return err
			}
			more, err := c.reply()
			if err != nil {
				return err
			}
			jobs = append(jobs, more...)
		}
		out := make([]string, len(jobs))
		var wg sync.WaitGroup
		for i, job := range jobs {
			wg.Add(1)
			go func(i int, job string) {
				defer wg.Done()
				// a job is "ID ROUNDS SEED"
				f := strings.Fields(job)
				if len(f) != 3 {
					out[i] = "bad-job"
					return
				}
				rounds, err := strconv.Atoi(f[1])
				if err != nil || rounds < 1 || rounds > 1<<28 {
					out[i] = f[0] + " bad-rounds"
					return
				}
				out[i] = f[0] + " " + stretch(f[2], rounds)
			}(i, job)
		}
		wg.Wait()
		if err := c.send(append([]string{"RPUSH", results}, out...)...); err != nil {
			return err
		}
		if _, err := c.reply(); err != nil {
			return err
		}
		ops.Add(int64(len(jobs)))
	}
}

func pipeline(n, work int) {
	if n < 2 {
		n = 2
	}
	chans := make([]chan [32]byte, n)
	for i := range chans {
		chans[i] = make(chan [32]byte, 1)
	}
	for i := 0; i < n; i++ {
		go func(i int) {
			in, out := chans[i], chans[(i+1)%n]
			for msg := range in {
				for k := 0; k < work; k++ {
					msg = sha256.Sum256(msg[:])
				}
				ops.Add(1)
				out <- msg
			}
		}(i)
	}
	// a few messages circulate around the ring; tickers wake goroutines as timers do in services
	for m := 0; m < n/8+1; m++ {
		chans[m*8%n] <- sha256.Sum256([]byte{byte(m)})
	}
	ticker := time.NewTicker(time.Millisecond)
	for range ticker.C {
		ops.Add(0)
	}
}
