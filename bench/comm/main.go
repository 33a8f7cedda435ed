// Command comm times the collectives mct uses most, on either transport:
// AllgatherF32 of the pseudo-label logits (B×C floats per view) and
// AllreduceF32 of a gradient (P floats), with the bytes each rank receives.
//
//	go build -o comm ./bench/comm
//	mpirun --oversubscribe -np 4 ./comm          # MPI transport
//	./comm -local 4                              # goroutines in one process
//
// Times are the slowest rank's mean per call after warm-up calls; on a shared
// or oversubscribed machine they are noisy, so repeat and take the best.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"mct/ranks"
)

func main() {
	if err := mainErr(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "comm:", err)
		os.Exit(1)
	}
}

// mainErr runs the program with the command-line arguments args and writes rank 0's
// lines to out.
func mainErr(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("comm", flag.ContinueOnError)
	local := fs.Int("local", 2, "ranks to run as goroutines when not started by mpirun or srun")
	rows := fs.Int("rows", 1024, "AllgatherF32: rows per rank (batch size)")
	cols := fs.Int("cols", 10, "AllgatherF32: floats per row (classes)")
	params := fs.Int("params", 3_000_000, "AllreduceF32: floats (model parameters)")
	iters := fs.Int("iters", 20, "timed calls per collective")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"rows", *rows}, {"cols", *cols}, {"params", *params}, {"iters", *iters}} {
		if f.v < 1 {
			return fmt.Errorf("-%s %d: want at least 1", f.name, f.v)
		}
	}

	bench := func(transport string) func(c ranks.Comm) error {
		return func(c ranks.Comm) error {
			run(c, out, transport, "AllgatherF32", *rows**cols, *iters, gatherBytes, func(buf, recv []float32) { c.AllgatherF32(buf, recv) })
			run(c, out, transport, "AllreduceF32", *params, *iters, reduceBytes, func(buf, _ []float32) { c.AllreduceF32(buf) })
			return nil
		}
	}
	if !ranks.Launched() {
		return ranks.RunLocal(*local, bench("local"))
	}
	world, err := ranks.World()
	if err != nil {
		return err
	}
	defer world.Close()
	return bench("mpi")(world)
}

// gatherBytes is what one rank receives in an allgather of n floats per rank.
func gatherBytes(n, p int) int { return (p - 1) * n * 4 }

// reduceBytes is what one rank receives in ranks' allreduce of n floats: its
// chunk from every other rank, then every other chunk, 2(p−1)/p of the buffer.
func reduceBytes(n, p int) int { return 2 * (p - 1) * n / p * 4 }

func run(c ranks.Comm, out io.Writer, transport, name string, n, iters int, bytes func(n, p int) int, op func(buf, recv []float32)) {
	buf := make([]float32, n)
	for i := range buf {
		buf[i] = float32(i%97) * 1e-3
	}
	recv := make([]float32, n*c.Size())
	for range 3 {
		op(buf, recv)
	}
	c.Barrier()
	start := time.Now()
	for range iters {
		op(buf, recv)
	}
	elapsed := []int64{int64(time.Since(start))}
	c.AllreduceI64(elapsed, ranks.Max)
	if c.Rank() != 0 {
		return
	}
	per := time.Duration(elapsed[0] / int64(iters))
	b := bytes(n, c.Size())
	fmt.Fprintf(out, "%-5s np=%d %s n=%d: %v per call, %d bytes received per rank, %.2f GB/s\n",
		transport, c.Size(), name, n, per.Round(time.Microsecond), b, float64(b)/per.Seconds()/1e9)
}
