package main

import "fmt"

// Network is an interconnect as the cost model sees it: every rank sends and receives
// at Bandwidth at once (full duplex), and every step of a ring costs Latency.
type Network struct {
	Name      string
	Bandwidth float64 // bytes/s per rank and direction
	Latency   float64 // seconds per message step
}

// Compute is the per-GPU time of one MCT update of one view (all its passes, no
// collectives), split into a part that does not depend on the batch (kernel launches,
// host round trips) and a part that scales with the rows the replica holds.
type Compute struct {
	Name     string
	Fixed    float64 // seconds per update, whatever the batch
	PerBatch float64 // seconds per update at RefBatch rows, scaled linearly
	RefBatch int
}

func (c Compute) seconds(rows int) float64 {
	return c.Fixed + c.PerBatch*float64(rows)/float64(c.RefBatch)
}

// Workload is what one MCT update moves through the collectives (train/step.go): the
// peer all-gather of every view's teacher logits (rows×Classes float32 per view) and of
// the V feedback scalars h (float64), and, within each view's pool of replicas, two
// gradient all-reduces of Params float32 (student and teacher steps), one BatchNorm
// all-reduce of BNFloats float32 each time a BatchNorm layer sees a training batch, and
// one all-reduce of LossFloat64s float64 (the pooled losses).
type Workload struct {
	Views        int
	Classes      int
	Params       int64 // gradient floats of the largest view
	BNFloats     []int // float32 count of each BatchNorm all-reduce in one update
	LossFloat64s int
}

// Prediction is the modelled time of one update on GPUs = Views×Replicas devices.
type Prediction struct {
	GPUs, Replicas int
	Rows           int     // unlabeled rows per replica
	GlobalBatch    int     // unlabeled rows per update
	Compute        float64 // seconds
	Gather         float64 // seconds in the two peer all-gathers
	Reduce         float64 // seconds in the pool all-reduces
	GatherBytes    float64 // all-gather payload per update (the gathered buffers)
	ReduceBytes    float64 // all-reduce payload per update (each rank's buffers)
}

// Total is compute plus communication: the MCT step waits for each collective before
// it goes on (no overlap), so the times add.
func (p Prediction) Total() float64 { return p.Compute + p.Gather + p.Reduce }

// CommShare is the fraction of the update spent in collectives.
func (p Prediction) CommShare() float64 { return (p.Gather + p.Reduce) / p.Total() }

// ringAllreduce is a ring all-reduce of a bytes-long buffer over n ranks: a
// reduce-scatter and an all-gather, each n−1 steps moving bytes/n per rank.
func ringAllreduce(bytes float64, n int, net Network) float64 {
	if n < 2 {
		return 0
	}
	r := float64(n)
	return 2*(r-1)/r*bytes/net.Bandwidth + 2*(r-1)*net.Latency
}

// ringAllgather is a ring all-gather whose gathered buffer is bytes long (bytes/n from
// each of n ranks): n−1 steps, each rank receiving the (n−1)/n it lacks.
func ringAllgather(bytes float64, n int, net Network) float64 {
	if n < 2 {
		return 0
	}
	r := float64(n)
	return (r-1)/r*bytes/net.Bandwidth + (r-1)*net.Latency
}

// Predict models one update on gpus devices (gpus/Views replicas per view). rows is the
// replica's unlabeled batch: global/replicas under strong scaling, fixed under weak.
func Predict(w Workload, net Network, c Compute, gpus, rows int) (Prediction, error) {
	if w.Views < 2 || gpus%w.Views != 0 {
		return Prediction{}, fmt.Errorf("model: %d GPUs is not a multiple of %d views", gpus, w.Views)
	}
	if rows < 1 {
		return Prediction{}, fmt.Errorf("model: %d rows per replica, need at least 1", rows)
	}
	R := gpus / w.Views
	p := Prediction{GPUs: gpus, Replicas: R, Rows: rows, GlobalBatch: rows * R, Compute: c.seconds(rows)}
	logits := 4 * float64(w.Views*rows*w.Classes)
	hs := 8 * float64(w.Views)
	p.GatherBytes = float64(allgatherBytes(w.Views, rows, w.Classes, true))
	p.Gather = ringAllgather(logits, w.Views, net) + ringAllgather(hs, w.Views, net)
	if R > 1 {
		grad := 4 * float64(w.Params)
		p.ReduceBytes = 2 * grad
		p.Reduce = 2 * ringAllreduce(grad, R, net)
		for _, f := range w.BNFloats {
			p.ReduceBytes += 4 * float64(f)
			p.Reduce += ringAllreduce(4*float64(f), R, net)
		}
		loss := 8 * float64(w.LossFloat64s)
		p.ReduceBytes += loss
		p.Reduce += ringAllreduce(loss, R, net)
	}
	return p, nil
}

// allgatherBytes is what one update's peer all-gathers carry in all: every view's h
// (a float64) and, unless the views pass them through their backends (views of one
// process), every view's rows×classes float32 teacher logits.
func allgatherBytes(views, rows, classes int, logits bool) int64 {
	b := int64(8 * views)
	if logits {
		b += int64(4 * views * rows * classes)
	}
	return b
}

// bnReducesPerLayer recovers how many BatchNorm all-reduces each layer makes per update
// from a measured all-reduce byte count of a probe whose BatchNorm layers all have width
// hidden: allreduce = 2·4·params + k·layers·4·(2·hidden+1) + 8·lossFloat64s. An
// inexact division means the workload description above no longer matches the code.
func bnReducesPerLayer(allreduce, params int64, layers, hidden, lossFloat64s int) (int, error) {
	rest := allreduce - 8*params - 8*int64(lossFloat64s)
	per := int64(layers * 4 * (2*hidden + 1))
	if rest <= 0 || rest%per != 0 {
		return 0, fmt.Errorf("model: all-reduce of %d bytes is not 2 gradients of %d floats + BatchNorm sums of %d layers × (2·%d+1) floats + %d loss float64s; update the Workload to match train/step.go",
			allreduce, params, layers, hidden, lossFloat64s)
	}
	return int(rest / per), nil
}
