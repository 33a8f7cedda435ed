// Package train runs the algorithms of mct end to end: the supervised baseline, the
// co-training baseline and Meta Co-Training, on one rank per view (and replica) over a
// ranks.Comm, each on an nn.Backend. The command `mct train` is a thin layer over it.
//
// Use: take Defaults, set the fields that differ (Config documents each; RunID hashes
// the ones that change results), and call Run with a context and a writer for progress.
// Run launched by mpirun or srun is one rank of the job; otherwise it runs every view in
// this process, one goroutine each. It writes into cfg.Out config.json, metrics.jsonl,
// the checkpoints (ckpt/), each view's final probe, summary.json (Summary) and
// curves.png. Predict scores a finished run on new data; Bench and Updates time or
// check MCT updates alone.
//
// Phases and stopping. --algo supervised is one supervised phase: every view trains on
// its labeled examples, with early stopping on validation accuracy, restore-best and a
// plateau learning-rate schedule. --algo mct runs that phase as a warmup, then MCT
// epochs. --algo cotrain runs rounds of supervised training from scratch and exchange
// of the most confident pseudo-labels. A run stops when its context is done (`mct train`
// cancels it on SIGTERM and SIGUSR1): at the next boundary — an epoch of the supervised
// phase or of a co-training round, an MCT update — every rank checks in, they agree in
// one collective, write a checkpoint of everything needed to continue exactly, commit
// it, and Run returns ErrStopped. Views that stopped early still pass the boundaries of
// the others, so that every rank stops at the same one. A context done while the views
// are being built (data.Options.Context) stops Run before training, every rank agreeing,
// with ErrStopped too; what was built stays in the cache.
//
// Checkpoints. Each rank writes, through package ckpt, its sections "probe" (weights,
// BatchNorm statistics, the dropout step), "adam" (moments, step, learning rate),
// "best" (the probe early stopping restores) and "run": JSON (savedState, layout
// version stateVersion) naming the phase and holding its position — sampler positions,
// the schedule, early-stopping counters, the epoch history the summary and plots use,
// for co-training the round and the examples moved so far, for MCT the epoch records —
// and the length of metrics.jsonl, which a resumed run keeps and appends to. Steps are
// numbered by boundary within a phase: the MCT phase's update count, or the boundaries
// passed in the supervised or co-training phase. The MCT phase's first checkpoint
// (update 0) supersedes the warmup's, whose higher step numbers ckpt.Commit then
// uncommits. With cfg.Resume, Run continues from the newest committed checkpoint and
// ends as the uninterrupted run would, bit for bit: the same parameters, accuracies and
// metrics records.
package train
