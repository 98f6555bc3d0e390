package loadgen

import (
	"bytes"
	"fmt"
	"slices"
	"time"
)

// Order is the order targets are driven in, in round r of a run: the
// targets rotated by r, so that none is always first (on a shared machine
// the first of a round meets a different machine than the last).
func Order(targets, r int) []int {
	out := make([]int, targets)
	for i := range out {
		out[i] = (i + r) % targets
	}
	return out
}

// Combine makes one result per target of several rounds (rounds[r][i] is
// target i's result in round r): requests and errors summed, throughput,
// percentiles and CPU per decision the medians of the rounds'.
func Combine(rounds [][]Result) []Result {
	if len(rounds) == 1 {
		return rounds[0]
	}
	out := make([]Result, len(rounds[0]))
	for i := range out {
		var tp []float64
		var p50, p90, p99, mx, cpu, dur []time.Duration
		r := Result{Target: rounds[0][i].Target}
		for _, round := range rounds {
			x := round[i]
			r.Requests += x.Requests
			r.Errors += x.Errors
			tp = append(tp, x.Throughput)
			p50, p90, p99, mx = append(p50, x.P50), append(p90, x.P90), append(p99, x.P99), append(mx, x.Max)
			cpu, dur = append(cpu, x.CPUPerDecision), append(dur, x.Duration)
		}
		r.Throughput, r.P50, r.P90, r.P99, r.Max = median(tp), median(p50), median(p90), median(p99), slices.Max(mx)
		r.CPUPerDecision, r.Duration = median(cpu), median(dur)
		out[i] = r
	}
	return out
}

// FormatRounds says, per target after the first, its throughput and CPU
// per decision against the first target's in each round, and their
// medians and quartiles: a ratio within one round compares targets that
// met the same machine, which a median across rounds does not. together
// says the targets of a round were driven at the same time (else one
// after the other, in rotating order).
func FormatRounds(rounds [][]Result, together bool) string {
	if len(rounds) < 2 {
		return ""
	}
	var b bytes.Buffer
	how := "targets in rotating order"
	if together {
		how = "targets driven together"
	}
	fmt.Fprintf(&b, "\nagainst %s, round by round (%d rounds, %s):\n", rounds[0][0].Target.Name, len(rounds), how)
	for i := 1; i < len(rounds[0]); i++ {
		var tp, p99, cpu []float64
		for _, round := range rounds {
			if base := round[0]; base.Throughput > 0 {
				tp = append(tp, round[i].Throughput/base.Throughput)
			}
			if base := round[0]; base.P99 > 0 {
				p99 = append(p99, float64(round[i].P99)/float64(base.P99))
			}
			if base := round[0]; base.CPUPerDecision > 0 && round[i].CPUPerDecision > 0 {
				cpu = append(cpu, float64(round[i].CPUPerDecision)/float64(base.CPUPerDecision))
			}
		}
		fmt.Fprintf(&b, "%-22s req/s ratio %s (median %.2f, quartiles %.2f–%.2f); p99 ratio %s (median %.2f)", rounds[0][i].Target.Name,
			ratios(tp), median(tp), quantile(tp, 0.25), quantile(tp, 0.75), ratios(p99), median(p99))
		if len(cpu) > 0 {
			fmt.Fprintf(&b, "; cpu ratio %s (median %.2f, quartiles %.2f–%.2f)", ratios(cpu), median(cpu), quantile(cpu, 0.25), quantile(cpu, 0.75))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// quantile is the q-quantile of xs, interpolated between the nearest
// ranks; 0 for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}

// FormatAgainst says how target i did against target floor (a durable
// floor) in each round and in the median of the rounds: its throughput as
// a share of the floor's, and its p99 as a multiple of the floor's.
func FormatAgainst(rounds [][]Result, i, floor int) string {
	var tp, p99 []float64
	for _, round := range rounds {
		t, f := round[i], round[floor]
		if f.Throughput > 0 {
			tp = append(tp, t.Throughput/f.Throughput)
		}
		if f.P99 > 0 {
			p99 = append(p99, float64(t.P99)/float64(f.P99))
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n%s against the %s, round by round: req/s %s of its (median %.2f); p99 %s× its (median %.2f)\n",
		rounds[0][i].Target.Name, rounds[0][floor].Target.Name, ratios(tp), median(tp), ratios(p99), median(p99))
	return b.String()
}

func ratios(xs []float64) string {
	var b bytes.Buffer
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.2f", x)
	}
	return b.String()
}

// median is the middle of xs (the mean of the two middle ones for an even
// count); 0 for none.
func median[T time.Duration | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
