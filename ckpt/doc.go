// Package ckpt stores what each rank needs to continue a run exactly, and
// exports trained probes to safetensors for PyTorch users.
//
// # What a checkpoint is
//
// Every rank writes its own file of named, opaque sections — weights, Adam
// moments, BatchNorm statistics, RNG and sampler positions, scheduler and
// early-stopping state, each serialised by its owner to []byte — plus a
// Header saying which run, rank, view, replica, step and epoch it belongs
// to. ckpt owns the file format and the commit protocol, nothing about what
// the sections mean.
//
// On disk, under the run directory (which every rank must see: a shared
// file system on a cluster):
//
//	ckpt/step-<step>/rank-<rank>.mct   one file per rank
//	ckpt/step-<step>/COMMITTED         written by rank 0 once all files exist
//
// A rank file is the magic "MCTCKPT\x00", a format version, a JSON header,
// the sections compressed as one zstd frame, the frame's length and a
// CRC-32C of everything before it. A damaged byte (any burst of up to 32
// bits) and a truncation are always detected on load, wider damage with
// probability 1 − 2⁻³², and the zstd frame carries its own checksum of the
// sections besides; a file of another format version is refused. Files are
// written to a temporary name, synced, renamed and the directory synced, so
// a crash at any moment leaves either the old state or the new one.
//
// # Saving
//
// Every rank saves, all ranks meet at a barrier, then rank 0 commits:
//
//	h := ckpt.Header{RunID: id, View: v, Replica: r, Rank: rank, World: world, Step: step, Epoch: epoch}
//	if err := ckpt.Save(runDir, h, sections); err != nil { ... }
//	comm.Barrier()
//	if rank == 0 {
//		if err := ckpt.Commit(runDir, step, world, 3); err != nil { ... }
//	}
//
// A step without its COMMITTED marker does not exist as far as loading is
// concerned, so a job killed between Save and Commit resumes from the step
// before. Commit keeps the newest keep committed steps and removes the rest.
//
// RunID is the caller's hash of every setting that changes the meaning of
// the saved state (model shape, views, data, seeds, algorithm). Loading
// with another RunID fails with ErrOtherConfig and a message telling the
// user to choose a new output directory or the original flags.
//
// # Resuming
//
// Latest returns this rank's file of the newest committed step. If that
// file is damaged or missing, it logs a warning naming the file (log/slog)
// and falls back to the previous committed step. ErrNoCheckpoint means
// nothing was committed: start from scratch. Because each rank falls back
// on its own, the ranks must then agree on one step — the oldest any of
// them got — and load that:
//
//	h, sections, err := ckpt.Latest(runDir, rank, id)
//	if errors.Is(err, ckpt.ErrNoCheckpoint) { /* fresh start; every rank sees the same markers */ }
//	step := comm.AllreduceMin(h.Step)
//	if step != h.Step {
//		h, sections, err = ckpt.Load(runDir, step, rank, id)
//	}
//
// # Resuming with another number of replicas
//
// The files are per rank, but their content is per view: the replicas of a
// view are kept bit-identical by the pool all-reduce. A run restarted with a
// different replica count R (same views) therefore uses LatestForView and
// LoadForView, which load the file of any rank that trained the view,
// trying the view's other replicas before an older step. This is only
// correct if no section holds replica-specific state; keep per-replica
// positions (for example a shard offset) derivable from the replica index
// and the shared sampler state instead of saving them.
//
// # Export
//
// WriteSafetensors writes float32 tensors in the safetensors format, which
// PyTorch loads with safetensors.torch.load_file; ReadSafetensors reads
// such files back (F32 only).
package ckpt
