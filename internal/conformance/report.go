package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Outcome is what happened to one spec in one run.
type Outcome string

// Outcomes, folded from Ginkgo's spec states.
const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed" // failed, panicked, timed out, interrupted, aborted
	Skipped Outcome = "skipped"
)

// Spec is one spec's result in a run.
type Spec struct {
	// Name is the spec's full text: its containers' texts and its own,
	// joined by spaces (what Ginkgo's -focus and -skip match).
	Name string
	// Location is file:line of the It.
	Location string
	Outcome  Outcome
	// Message is the failure message (first lines) of a failed spec.
	Message string
}

// Key identifies a spec across runs of one binary.
func (s Spec) Key() string { return s.Location + " " + s.Name }

// ginkgoReport is the part of Ginkgo's JSON report the harness reads.
type ginkgoReport []struct {
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeText            string
		LeafNodeType            string
		LeafNodeLocation        struct {
			FileName   string
			LineNumber int
		}
		State   string
		Failure struct {
			Message  string
			Location struct {
				FileName   string
				LineNumber int
			}
		}
	}
}

// ParseReport reads a Ginkgo JSON report and returns its specs (suite-level
// nodes such as BeforeSuite are returned too, named after their type, so a
// failing BeforeSuite shows up as a failure).
func ParseReport(data []byte) ([]Spec, error) {
	var rep ginkgoReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("ginkgo report: %w", err)
	}
	var specs []Spec
	for _, r := range rep {
		for _, s := range r.SpecReports {
			// Empty texts are left out, as Ginkgo does when it matches
			// -focus and -skip.
			texts := slices.DeleteFunc(append(slices.Clone(s.ContainerHierarchyTexts), s.LeafNodeText),
				func(t string) bool { return t == "" })
			name := strings.Join(texts, " ")
			if s.LeafNodeType != "It" {
				name = strings.TrimSpace("[" + s.LeafNodeType + "] " + name)
			}
			sp := Spec{
				Name:     strings.TrimSpace(name),
				Location: fmt.Sprintf("%s:%d", baseName(s.LeafNodeLocation.FileName), s.LeafNodeLocation.LineNumber),
			}
			switch s.State {
			case "passed":
				sp.Outcome = Passed
			case "skipped", "pending":
				sp.Outcome = Skipped
			default:
				sp.Outcome = Failed
				sp.Message = firstLines(s.Failure.Message, 3)
				if s.Failure.Location.FileName != "" {
					sp.Message = fmt.Sprintf("%s:%d: %s", baseName(s.Failure.Location.FileName), s.Failure.Location.LineNumber, sp.Message)
				}
			}
			// Suite nodes that passed say nothing about the factory.
			if s.LeafNodeType != "It" && sp.Outcome != Failed {
				continue
			}
			specs = append(specs, sp)
		}
	}
	return specs, nil
}

func baseName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ")
}

// Counts summarises a run.
type Counts struct {
	Run, Pass, Fail, Skip int
}

// Count tallies specs; Run is passed plus failed.
func Count(specs []Spec) Counts {
	var c Counts
	for _, s := range specs {
		switch s.Outcome {
		case Passed:
			c.Pass++
		case Failed:
			c.Fail++
		case Skipped:
			c.Skip++
		}
	}
	c.Run = c.Pass + c.Fail
	return c
}

// Diff is a configuration's run set against its baseline's.
type Diff struct {
	// FactoryOnly are specs that passed on the baseline and failed with
	// the factory: each is a conformance failure.
	FactoryOnly []Spec
	// SkippedOnly are specs that passed on the baseline and were skipped
	// with the factory (a spec's own probe decided so).
	SkippedOnly []Spec
	// Missing are baseline specs the configuration's report lacks.
	Missing []Spec
	// Fixed are specs that failed on the baseline and passed here.
	Fixed []Spec
}

// Compare sets a configuration's specs against the baseline's, by Key.
func Compare(baseline, got []Spec) Diff {
	byKey := make(map[string]Spec, len(got))
	for _, s := range got {
		byKey[s.Key()] = s
	}
	var d Diff
	for _, b := range baseline {
		g, ok := byKey[b.Key()]
		switch {
		case !ok:
			if b.Outcome != Skipped {
				d.Missing = append(d.Missing, b)
			}
		case b.Outcome == Passed && g.Outcome == Failed:
			d.FactoryOnly = append(d.FactoryOnly, g)
		case b.Outcome == Passed && g.Outcome == Skipped:
			d.SkippedOnly = append(d.SkippedOnly, g)
		case b.Outcome == Failed && g.Outcome == Passed:
			d.Fixed = append(d.Fixed, g)
		}
		delete(byKey, b.Key())
	}
	// A failure of a node the baseline does not have (a suite node) is
	// the factory's too.
	for _, g := range got {
		if _, extra := byKey[g.Key()]; extra && g.Outcome == Failed {
			d.FactoryOnly = append(d.FactoryOnly, g)
		}
	}
	return d
}

// SuiteDescription is the description go-redis's suite passes to RunSpecs.
const SuiteDescription = "go-redis"

// CheckExcluded returns an error naming every exclusion applying to config
// that did not show up as a skipped spec in its run: a spec renamed or
// removed upstream, or a pattern that does not match.
func CheckExcluded(ex []Exclusion, config Config, configs []Config, specs []Spec) error {
	pattern := SkipPattern(ex, config, configs)
	if pattern == "" {
		return nil
	}
	re := regexp.MustCompile(pattern)
	var missing []string
	for _, e := range ex {
		if !re.MatchString(SuiteDescription + " " + e.Spec) {
			continue // not for this run
		}
		found := false
		for _, s := range specs {
			if s.Outcome == Skipped && (s.Name == e.Spec || strings.HasPrefix(s.Name, e.Spec+" ")) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, e.Spec)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: excluded specs not skipped (renamed upstream?): %q", config.Name, missing)
	}
	return nil
}

// Exclusion is one entry of exclusions.yaml: a spec the harness does not
// run, and why.
type Exclusion struct {
	// Spec is the spec's full text, as in the report, or a container's
	// (its leading texts), which excludes every spec inside it.
	Spec string `yaml:"spec"`
	// Configs limits the exclusion to these runs; empty means every run.
	Configs []string `yaml:"configs,omitempty"`
	// Reason says why the spec cannot run here.
	Reason string `yaml:"reason"`
}

// LoadExclusions reads and checks an exclusions file: every entry needs a
// spec and a reason, and may name only known configurations.
func LoadExclusions(path string, configs []Config) ([]Exclusion, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ex []Exclusion
	if err := yaml.Unmarshal(data, &ex); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	known := map[string]bool{}
	for _, c := range configs {
		known[c.Name] = true
	}
	for i, e := range ex {
		if strings.TrimSpace(e.Spec) == "" || strings.TrimSpace(e.Reason) == "" {
			return nil, fmt.Errorf("%s: entry %d: spec and reason are required", path, i+1)
		}
		for _, c := range e.Configs {
			if !known[c] {
				return nil, fmt.Errorf("%s: entry %d (%q): unknown configuration %q", path, i+1, e.Spec, c)
			}
		}
	}
	return ex, nil
}

// SkipPattern returns the Ginkgo -skip regular expression that skips the
// exclusions applying to config, or "" when none does. A baseline also skips
// what its configurations exclude, so both sides run the same specs.
func SkipPattern(ex []Exclusion, config Config, configs []Config) string {
	applies := func(e Exclusion) bool {
		if len(e.Configs) == 0 {
			return true
		}
		for _, name := range e.Configs {
			if name == config.Name {
				return true
			}
			for _, c := range configs {
				if c.Name == name && c.Baseline == config.Name {
					return true
				}
			}
		}
		return false
	}
	var alts []string
	for _, e := range ex {
		if applies(e) {
			// A container's text excludes every spec inside it.
			alts = append(alts, regexp.QuoteMeta(e.Spec)+"(?: .*)?")
		}
	}
	if len(alts) == 0 {
		return ""
	}
	// Ginkgo matches -skip against the suite's description, a space and
	// the spec's text.
	return "^" + regexp.QuoteMeta(SuiteDescription) + " (?:" + strings.Join(alts, "|") + ")$"
}
