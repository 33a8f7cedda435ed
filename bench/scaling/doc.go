// Command scaling measures how the MCT update scales with MPI ranks and models it at
// cluster scale.
//
// It runs `mct bench --json` (train/bench.go) with the local transport (one process,
// the views as goroutines) and under `mpirun --oversubscribe -np W` for each W in --np
// (W = views × replicas; rank r is view r mod V, replica r div V), each for strong
// scaling (fixed global batch, --batch) and weak scaling (fixed batch per replica,
// --per-replica), keeps the fastest of --repeat runs, checks that the bytes each
// collective moved match the cost model's accounting, draws time per update and the
// communication share against W into --plot, and prints Markdown tables: the
// measurements, then the model's predicted time per update of a reference workload on
// 2 to 512 GPUs.
//
//	go build -o mct . && go build -o scaling ./bench/scaling
//	./scaling -mct ./mct > table.md
//
// The model (model.go, Predict) adds compute and communication, since the MCT step
// waits for each collective: the peer all-gather of V·rows·C logits and V feedback
// scalars as a ring over the V views, (V−1)/V·bytes/bandwidth + (V−1)·latency, and per
// view's pool of R replicas two gradient all-reduces of P floats, the BatchNorm sums
// and the pooled losses, each a ring all-reduce, 2·(R−1)/R·bytes/bandwidth +
// 2·(R−1)·latency. Compute per GPU is a batch-independent part (launches, host round
// trips) plus a part linear in the replica's rows.
//
// Times on a shared 2-core machine are inflated and noisy, and with W above the core
// count the ranks are oversubscribed, so the communication time (rank 0's, waiting for
// slower ranks included) mostly measures that; the byte counts are exact.
package main
