package nn

// ReduceLROnPlateau is torch.optim.lr_scheduler.ReduceLROnPlateau in mode "max" with
// threshold_mode "rel" (the metric is a validation accuracy): after more than
// Patience epochs without an improvement of more than Threshold (relative), the
// learning rate is multiplied by Factor, not below MinLR, then Cooldown epochs pass
// before counting again. The fields are plain so checkpoints can store them.
type ReduceLROnPlateau struct {
	Factor    float64 // PyTorch default 0.1
	Patience  int     // default 10
	Threshold float64 // default 1e-4
	Cooldown  int
	MinLR     float64
	Eps       float64 // changes smaller than this are ignored; default 1e-8

	Best          float64
	NumBadEpochs  int
	CooldownCount int
	Started       bool
}

// NewReduceLROnPlateau returns a scheduler with PyTorch's defaults except factor and
// patience.
func NewReduceLROnPlateau(factor float64, patience int) *ReduceLROnPlateau {
	return &ReduceLROnPlateau{Factor: factor, Patience: patience, Threshold: 1e-4, Eps: 1e-8}
}

// Step records one epoch's metric and returns the learning rate to use from now on.
func (s *ReduceLROnPlateau) Step(metric, lr float64) float64 {
	if !s.Started || metric > s.Best*(1+s.Threshold) {
		s.Best, s.NumBadEpochs, s.Started = metric, 0, true
	} else {
		s.NumBadEpochs++
	}
	if s.CooldownCount > 0 {
		s.CooldownCount--
		s.NumBadEpochs = 0
	}
	if s.NumBadEpochs > s.Patience {
		if nl := max(lr*s.Factor, s.MinLR); lr-nl > s.Eps {
			lr = nl
		}
		s.CooldownCount = s.Cooldown
		s.NumBadEpochs = 0
	}
	return lr
}

// EarlyStopping tracks the best value of a metric to maximise. Observe reports
// whether the new value is a strict improvement (the caller then saves the weights
// it will restore); Stop reports whether Patience observations in a row brought
// none.
type EarlyStopping struct {
	Patience  int
	Best      float64
	BestEpoch int
	Epoch     int
	Bad       int
}

// Observe records one epoch's metric.
func (e *EarlyStopping) Observe(metric float64) (improved bool) {
	e.Epoch++
	if e.Epoch == 1 || metric > e.Best {
		e.Best, e.BestEpoch, e.Bad = metric, e.Epoch, 0
		return true
	}
	e.Bad++
	return false
}

// Stop reports whether training should stop and the best weights be restored.
func (e *EarlyStopping) Stop() bool { return e.Bad >= e.Patience }
