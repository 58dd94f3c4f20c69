package report

import (
	"encoding/xml"
	"fmt"
	"time"

	"lvslab/sim/runner"
)

// JUnit XML as CI systems (Jenkins, GitLab, GitHub reporters) read it: one
// suite per scenario, one test case per expectation. The statuses map as
// pytest maps its own: xfail is skipped with the reason (the documented
// failure happened), xpass is a failure (it did not), warn passes with
// the detail in system-out, not-evaluated is an error (or skipped, for
// severity warn). Parts of the spec no stage carried out and a run error
// are error test cases too, so a CI view never shows an incomplete run
// as green.

// JUnitSuites is the document root.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one scenario run.
type JUnitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       float64         `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []JUnitProperty `xml:"properties>property,omitempty"`
	Cases      []JUnitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

// JUnitProperty is a name/value pair of the suite.
type JUnitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// JUnitCase is one expectation.
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *JUnitProblem `xml:"failure,omitempty"`
	Error     *JUnitProblem `xml:"error,omitempty"`
	Skipped   *JUnitProblem `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// JUnitProblem is a failure, error or skip.
type JUnitProblem struct {
	Message string `xml:"message,attr,omitempty"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// JUnit builds the document for one run.
func JUnit(res *runner.Result) JUnitSuites {
	class := "lvslab." + res.Scenario
	suite := JUnitSuite{
		Name: res.Scenario,
		Time: secs(time.Duration(res.BuildTime) + time.Duration(res.RunTime)),
		Properties: []JUnitProperty{
			{"verdict", string(res.Verdict)},
			{"exit_code", fmt.Sprint(res.Verdict.ExitCode())},
			{"file", res.File},
			{"seed", fmt.Sprint(res.Seed)},
			{"report_dir", res.Dir},
		},
	}
	if !res.Started.IsZero() {
		suite.Timestamp = res.Started.UTC().Format("2006-01-02T15:04:05")
	}
	if res.Error != "" {
		suite.Cases = append(suite.Cases, JUnitCase{
			Name: "run", Classname: class,
			Error: &JUnitProblem{Type: "run-error", Message: res.Error, Text: res.Error},
		})
	}
	for _, ne := range res.NotExecuted {
		msg := ne + ": no stage of this lvslab carries it out"
		suite.Cases = append(suite.Cases, JUnitCase{
			Name: "executed: " + ne, Classname: class,
			Error: &JUnitProblem{Type: "not-executed", Message: msg, Text: msg},
		})
	}
	for _, e := range res.Expectations {
		c := JUnitCase{Name: e.Name, Classname: class}
		switch e.Status {
		case runner.StatusPass:
			if e.Detail != "" {
				c.SystemOut = e.Detail
			}
		case runner.StatusFail:
			c.Failure = &JUnitProblem{Type: "fail", Message: e.Detail, Text: e.Detail}
		case runner.StatusWarn:
			c.SystemOut = "WARNING (severity warn, does not fail the run): " + e.Detail
		case runner.StatusXFail:
			msg := "expected failure: " + e.XFail
			c.Skipped = &JUnitProblem{Type: "xfail", Message: msg, Text: msg + "\nobserved: " + e.Detail}
		case runner.StatusXPass:
			msg := "expected to fail (" + e.XFail + ") but it held"
			c.Failure = &JUnitProblem{Type: "xpass", Message: msg, Text: msg + "\nobserved: " + e.Detail}
		default:
			msg := "not evaluated: " + e.Detail
			if e.Severity == "warn" {
				c.Skipped = &JUnitProblem{Type: "not-evaluated", Message: msg, Text: msg}
			} else {
				c.Error = &JUnitProblem{Type: "not-evaluated", Message: msg, Text: msg}
			}
		}
		suite.Cases = append(suite.Cases, c)
	}
	for _, c := range suite.Cases {
		suite.Tests++
		switch {
		case c.Failure != nil:
			suite.Failures++
		case c.Error != nil:
			suite.Errors++
		case c.Skipped != nil:
			suite.Skipped++
		}
	}
	return JUnitSuites{
		Name: "lvslab", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Skipped: suite.Skipped, Time: suite.Time, Suites: []JUnitSuite{suite},
	}
}

// MarshalJUnit is the XML text of the document, with its declaration.
func MarshalJUnit(doc JUnitSuites) ([]byte, error) {
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("junit: %w", err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

func secs(d time.Duration) float64 { return float64(d.Round(time.Millisecond)) / float64(time.Second) }
