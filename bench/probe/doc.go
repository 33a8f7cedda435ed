// Package probe benchmarks one probe update (Train forward, cross-entropy, backward,
// Adam step) of the reference FCNN on the CPU backend and, in the same run, the
// same update in PyTorch on the CPU, reporting milliseconds per update and the ratio.
//
//	go test ./bench/probe/ -run '^$' -bench . -benchtime 5x
//
// Results and the machine they came from are in bench/RESULTS-probe.md.
package probe
