package spec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Scalar types with units. Each parses from its text form (UnmarshalText),
// prints back to the same form (MarshalText), and describes itself to the
// JSON Schema generator (jsonSchema). Bare numbers are refused where a unit
// is needed: "5" could mean 5 s or 5 ms, and the spec should say which.

// Duration is a time span with a unit: "500ms", "2s", "1m", "1h30m", "1.5s".
type Duration time.Duration

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText prints the Go duration form, which UnmarshalText reads back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration that carries a unit.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return errors.New("empty duration")
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		return fmt.Errorf("duration %q needs a unit, e.g. %[1]sms or %[1]ss", s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 500ms, 2s, 1m)", s)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", s)
	}
	*d = Duration(v)
	return nil
}

func (Duration) jsonSchema() map[string]any {
	return map[string]any{
		"type":        "string",
		"pattern":     `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`,
		"description": "duration with a unit: 500ms, 2s, 1m, 1h30m",
	}
}

// Percent is a percentage written with a % sign: "5%", "0.1%", "100%".
type Percent float64

func (p Percent) String() string { return strconv.FormatFloat(float64(p), 'f', -1, 64) + "%" }

// Fraction is the percentage as a fraction of 1.
func (p Percent) Fraction() float64 { return float64(p) / 100 }

// MarshalText prints "N%".
func (p Percent) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses "N%" with 0 <= N <= 100.
func (p *Percent) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return fmt.Errorf("percentage %q needs a %% sign, e.g. %s%%", s, s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("invalid percentage %q", s)
	}
	if v < 0 || v > 100 {
		return fmt.Errorf("percentage %q outside 0%%..100%%", s)
	}
	*p = Percent(v)
	return nil
}

func (Percent) jsonSchema() map[string]any {
	return map[string]any{
		"type":        "string",
		"pattern":     `^[0-9]+(\.[0-9]+)?%$`,
		"description": "percentage: 5%, 0.1%",
	}
}

// Rate is a number of events per unit of time: "200/s", "10/m", "0.5/s".
// It is stored as events per second.
type Rate float64

var rateUnits = []struct {
	suffix string
	perSec float64
}{{"/ms", 1000}, {"/s", 1}, {"/m", 1.0 / 60}, {"/h", 1.0 / 3600}}

// PerSecond is the rate in events per second.
func (r Rate) PerSecond() float64 { return float64(r) }

func (r Rate) String() string { return strconv.FormatFloat(float64(r), 'f', -1, 64) + "/s" }

// MarshalText prints "N/s".
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses "N/s", "N/m", "N/h" or "N/ms".
func (r *Rate) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	for _, u := range rateUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return fmt.Errorf("invalid rate %q (want a positive number, e.g. 200/s)", s)
			}
			*r = Rate(v * u.perSec)
			return nil
		}
	}
	return fmt.Errorf("rate %q needs a unit: N/s, N/m, N/h or N/ms", s)
}

func (Rate) jsonSchema() map[string]any {
	return map[string]any{
		"type":        "string",
		"pattern":     `^[0-9]+(\.[0-9]+)?/(ms|s|m|h)$`,
		"description": "events per unit of time: 200/s, 10/m",
	}
}

// Bandwidth is a bit rate with tc's units: bit, kbit, mbit, gbit (bits per
// second) and bps, kbps, mbps, gbps (bytes per second). Stored in bits/s.
type Bandwidth uint64

var bandwidthUnits = []struct {
	suffix string
	bits   float64
}{
	{"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"bit", 1},
	{"kbps", 8e3}, {"mbps", 8e6}, {"gbps", 8e9}, {"bps", 8},
}

// BitsPerSecond is the bandwidth in bits per second.
func (b Bandwidth) BitsPerSecond() uint64 { return uint64(b) }

func (b Bandwidth) String() string {
	switch {
	case b != 0 && b%1e9 == 0:
		return strconv.FormatUint(uint64(b)/1e9, 10) + "gbit"
	case b != 0 && b%1e6 == 0:
		return strconv.FormatUint(uint64(b)/1e6, 10) + "mbit"
	case b != 0 && b%1e3 == 0:
		return strconv.FormatUint(uint64(b)/1e3, 10) + "kbit"
	}
	return strconv.FormatUint(uint64(b), 10) + "bit"
}

// MarshalText prints the largest exact bit unit.
func (b Bandwidth) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses "10mbit", "512kbit", "1gbit", "100kbps".
func (b *Bandwidth) UnmarshalText(t []byte) error {
	s := strings.ToLower(strings.TrimSpace(string(t)))
	for _, u := range bandwidthUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*u.bits > 1e13 {
				return fmt.Errorf("invalid bandwidth %q (want e.g. 10mbit)", string(t))
			}
			*b = Bandwidth(math.Round(v * u.bits))
			return nil
		}
	}
	return fmt.Errorf("bandwidth %q needs a unit: bit, kbit, mbit, gbit, bps, kbps, mbps, gbps", string(t))
}

func (Bandwidth) jsonSchema() map[string]any {
	return map[string]any{
		"type":        "string",
		"pattern":     `^[0-9]+(\.[0-9]+)?([kmgKMG]?(bit|bps))$`,
		"description": "bandwidth with tc units: 10mbit, 512kbit, 1gbit, 100kbps (bytes/s)",
	}
}

// Size is a number of bytes: "1500", "1500B", "64KiB", "1MiB", "2MB".
type Size uint64

var sizeUnits = []struct {
	suffix string
	mult   uint64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// Bytes is the size in bytes.
func (s Size) Bytes() uint64 { return uint64(s) }

func (s Size) String() string {
	switch {
	case s != 0 && s%(1<<30) == 0:
		return strconv.FormatUint(uint64(s)>>30, 10) + "GiB"
	case s != 0 && s%(1<<20) == 0:
		return strconv.FormatUint(uint64(s)>>20, 10) + "MiB"
	case s != 0 && s%(1<<10) == 0:
		return strconv.FormatUint(uint64(s)>>10, 10) + "KiB"
	}
	return strconv.FormatUint(uint64(s), 10) + "B"
}

// MarshalText prints the largest exact binary unit.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a byte count with an optional unit.
func (s *Size) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	num, mult := t, uint64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || (mult > 1 && v > math.MaxUint64/mult) {
		return fmt.Errorf("invalid size %q (want e.g. 1500, 64KiB, 1MiB)", t)
	}
	*s = Size(v * mult)
	return nil
}

func (Size) jsonSchema() map[string]any {
	return map[string]any{
		"description": "bytes, optionally with a unit: 1500, 64KiB, 1MiB, 2MB",
		"anyOf": []any{
			map[string]any{"type": "integer", "minimum": 0},
			map[string]any{"type": "string", "pattern": `^[0-9]+ *(B|KB|MB|GB|KiB|MiB|GiB)?$`},
		},
	}
}

// Unit is the kind of value a Quantity holds.
type Unit string

// The units a comparison can carry.
const (
	UnitNumber   Unit = "number"
	UnitDuration Unit = "duration"
	UnitPercent  Unit = "percent"
)

// Quantity is the right-hand side of a comparison in an expectation: a plain
// number (a count), a duration ("3s") or a percentage ("0.1%"). Which one a
// metric accepts is checked by the validator.
type Quantity struct {
	Text  string
	Unit  Unit
	Value float64 // the number; seconds for durations; percentage points for percents
}

func (q Quantity) String() string { return q.Text }

// MarshalText prints the quantity as written.
func (q Quantity) MarshalText() ([]byte, error) { return []byte(q.Text), nil }

// UnmarshalText recognises a percentage, a duration or a number.
func (q *Quantity) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if strings.HasSuffix(s, "%") {
		var p Percent
		if err := p.UnmarshalText([]byte(s)); err != nil {
			return err
		}
		*q = Quantity{Text: s, Unit: UnitPercent, Value: float64(p)}
		return nil
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("invalid number %q", s)
		}
		*q = Quantity{Text: s, Unit: UnitNumber, Value: v}
		return nil
	}
	var d Duration
	if err := d.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("invalid quantity %q (want a number, a duration such as 3s, or a percentage such as 1%%)", s)
	}
	*q = Quantity{Text: s, Unit: UnitDuration, Value: d.D().Seconds()}
	return nil
}

func (Quantity) jsonSchema() map[string]any {
	return map[string]any{
		"description": "a number, a duration (3s) or a percentage (0.1%)",
		"anyOf": []any{
			map[string]any{"type": "number"},
			map[string]any{"type": "string"},
		},
	}
}
