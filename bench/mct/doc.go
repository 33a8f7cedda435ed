// Package mct benchmarks the MCT update (DESIGN.md "The MCT step": teacher pass,
// pseudo-labels, student step, feedback h, teacher step, for every view) in Go against
// the same step in PyTorch, run in the same command on the same machine.
//
//	go test ./bench/mct -run '^$' -bench MCT -benchtime 5x
//
// BenchmarkMCT reports, per update of all views: ns/op and go_updates/s of the Go
// step (train.Bench: real mctUpdate, local transport, CPU backend),
// torch_updates/s of mct_step.py, and go/torch, their ratio.
// The default problem is the reference setting: batch 1024 unlabeled and 1024
// labeled rows, two views 784 and 324 wide, 10 classes, the FCNN [1024,1024,1024].
// Flags after -args change it (-mct.dims, -mct.hidden, -mct.batch, ...).
//
// mct_step.py is the project's one PyTorch implementation of the step: the oracle
// test train.TestMCTStepMatchesPyTorch checks Go's step against it (`mct_step.py
// oracle`), BenchmarkMCT times it on the CPU and bench/device-check.sh times it on a
// GPU (`mct_step.py bench --device cuda --precision fp32,bf16 --out torch.json`), so
// every speed ratio compares against the step the oracle test checked.
// TestDeviceCheckTorchCommand runs device-check.sh's command line on the CPU (one
// update of a small batch at fp32, tf32 and bf16) and reads the JSON the device
// check's table reads, so a broken GPU baseline fails here, not on a lent GPU.
// TestBenchmarkMCTSmall runs both sides of BenchmarkMCT for one update of a tiny
// problem, so a benchmark that no longer runs fails plain `go test` too.
//
// Fairness: Go runs with GOMAXPROCS cores (one goroutine per view, the BLAS threads
// split between them, as `mct train` does); PyTorch gets torch.set_num_threads with
// the same count and must run its products on OpenBLAS or MKL (Debian's torch calls
// whatever libblas.so.3 is; with the reference BLAS it is ~10× slower): the benchmark
// fails otherwise. -mct.python names another interpreter (default /usr/bin/python3,
// Debian's); GOMAXPROCS=2 taskset -c 0,1 pins both to two cores. Both draw random
// features and labels, sample pseudo-labels (Gumbel-max) and use approximate h
// unless -mct.hard or -mct.exact-h. Results are recorded in bench/RESULTS-mct.md.
//
// Two scripts study MCT's accuracy rather than its speed, on the validation split
// only (README, Results): ablation.sh reruns the default with one change at a time,
// search.py draws eight flags at once at random. TestAblationAndSearch runs both end to
// end, every training shrunk to a tiny dataset, so a variant whose flag mct train no
// longer has, or a table that no longer comes out, fails `go test`.
package mct
