//! A run as JUnit XML, the format CI dashboards read: one test case per setup step (class
//! `setup`) and one for the suite's test command (class `suite`), with durations, and the
//! failure message and diagnosis where something failed.
//!
//! ```
//! # use infra::report::{Finished, Tests};
//! let setup = infra::RunReport::default();
//! let xml = infra::junit::render(&Finished {
//!     suite: "gateway", backend: "local", run: None, setup: &setup,
//!     tests: &Tests::SetupFailed("postgres did not come up".into()),
//! });
//! assert!(xml.contains(r#"<testcase classname="suite" name="gateway" time="0.000">"#));
//! ```

use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use crate::report::{Finished, Tests};
use crate::runner::{Outcome, StepRecord};
use crate::session::TestOutcome;

/// What one test case says beyond its name and time.
enum Verdict {
    Passed,
    /// A test that ran and did not pass: one line, then the evidence.
    Failure {
        message: String,
        text: String,
    },
    /// Could not be judged because something around it broke (the setup).
    Error {
        message: String,
        text: String,
    },
    Skipped(String),
}

struct Case {
    classname: &'static str,
    name: String,
    seconds: f64,
    verdict: Verdict,
}

/// The JUnit XML document for a finished run.
pub fn render(run: &Finished) -> String {
    let mut cases: Vec<Case> = run.setup.steps.iter().map(|r| step_case(run, r)).collect();
    if let Some(case) = suite_case(run) {
        cases.push(case);
    }
    let mut out = Vec::new();
    write(&mut Writer::new_with_indent(&mut out, b' ', 2), run, &cases)
        .expect("writing into memory does not fail");
    String::from_utf8(out).expect("the writer writes the UTF-8 it is given")
}

fn step_case(run: &Finished, r: &StepRecord) -> Case {
    let seconds = r.duration_ms().unwrap_or(0) as f64 / 1000.0;
    let why_stopped = || match &run.setup.failure {
        Some((step, _)) => format!("{step} failed"),
        None if run.setup.interrupted => "the run was interrupted".to_string(),
        None => "the run ended".to_string(),
    };
    let verdict = match r.outcome {
        Outcome::Ready => Verdict::Passed,
        Outcome::Failed => {
            let failure = run.setup.failure.as_ref().filter(|(step, _)| *step == r.step).map(|(_, f)| f);
            let message = failure.map_or("failed".to_string(), |f| f.message.clone());
            let text = match failure.and_then(|f| f.diagnosis.as_deref()) {
                Some(d) => format!("{message}\n\n{d}"),
                None => message.clone(),
            };
            Verdict::Failure { message, text }
        }
        Outcome::Stopped => Verdict::Skipped(format!("stopped: {}", why_stopped())),
        Outcome::NotStarted => Verdict::Skipped(format!("not started: {}", why_stopped())),
        Outcome::Background => Verdict::Skipped("runs in the background, once the run is ready".into()),
    };
    Case { classname: "setup", name: r.step.clone(), seconds, verdict }
}

fn suite_case(run: &Finished) -> Option<Case> {
    let (seconds, verdict) = match run.tests {
        Tests::NotPart => return None,
        Tests::Ran { outcome, took, diagnosis } => {
            let evidence = |message: String| {
                let text = match diagnosis {
                    Some(d) => format!("{message}\n\n{d}"),
                    None => message.clone(),
                };
                Verdict::Failure { message, text }
            };
            let verdict = match outcome {
                TestOutcome::Passed => Verdict::Passed,
                TestOutcome::Failed(status) => evidence(format!("the tests failed: {status}")),
                TestOutcome::TimedOut(after) => {
                    evidence(format!("the tests timed out after {} s", after.as_secs()))
                }
                TestOutcome::Interrupted => Verdict::Skipped("interrupted while the tests ran".into()),
            };
            (took.as_secs_f64(), verdict)
        }
        Tests::SetupFailed(why) => {
            let message = format!("not run: the environment did not come up: {why}");
            (0.0, Verdict::Error { text: message.clone(), message })
        }
        Tests::Interrupted => (0.0, Verdict::Skipped("not run: interrupted during setup".into())),
    };
    Some(Case { classname: "suite", name: run.suite.to_string(), seconds, verdict })
}

fn write(w: &mut Writer<&mut Vec<u8>>, run: &Finished, cases: &[Case]) -> io::Result<()> {
    let count = |f: fn(&Verdict) -> bool| cases.iter().filter(|c| f(&c.verdict)).count().to_string();
    let tests = cases.len().to_string();
    let failures = count(|v| matches!(v, Verdict::Failure { .. }));
    let errors = count(|v| matches!(v, Verdict::Error { .. }));
    let skipped = count(|v| matches!(v, Verdict::Skipped(_)));
    let time = seconds(cases.iter().map(|c| c.seconds).sum());
    let name = format!("{} ({})", run.suite, run.backend);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let counts = [
        ("tests", tests.as_str()),
        ("failures", &failures),
        ("errors", &errors),
        ("skipped", &skipped),
        ("time", &time),
    ];
    w.create_element("testsuites")
        .with_attribute(("name", name.as_str()))
        .with_attributes(counts)
        .write_inner_content(|w| {
            w.create_element("testsuite")
                .with_attribute(("name", name.as_str()))
                .with_attributes(counts)
                .write_inner_content(|w| {
                    w.create_element("properties").write_inner_content(|w| {
                        let mut props = vec![("suite", run.suite), ("backend", run.backend)];
                        props.extend(run.run.map(|id| ("run", id)));
                        for (k, v) in props {
                            w.create_element("property")
                                .with_attributes([("name", k), ("value", v)])
                                .write_empty()?;
                        }
                        Ok::<(), io::Error>(())
                    })?;
                    for case in cases {
                        write_case(w, case)?;
                    }
                    Ok::<(), io::Error>(())
                })?;
            Ok::<(), io::Error>(())
        })?;
    Ok(())
}

fn write_case(w: &mut Writer<&mut Vec<u8>>, case: &Case) -> io::Result<()> {
    let time = seconds(case.seconds);
    let element = w.create_element("testcase").with_attributes([
        ("classname", case.classname),
        ("name", case.name.as_str()),
        ("time", time.as_str()),
    ]);
    let (tag, message, text) = match &case.verdict {
        Verdict::Passed => {
            element.write_empty()?;
            return Ok(());
        }
        Verdict::Failure { message, text } => ("failure", message, Some(text)),
        Verdict::Error { message, text } => ("error", message, Some(text)),
        Verdict::Skipped(message) => ("skipped", message, None),
    };
    // Attribute values lose their line breaks to the parser: the message is the first line,
    // the whole story goes into the element's text.
    let message = xml_safe(message.lines().next().unwrap_or_default());
    element.write_inner_content(|w| {
        let inner = w.create_element(tag).with_attribute(("message", message.as_str()));
        match text {
            Some(text) => inner.write_text_content(BytesText::new(&xml_safe(text)))?,
            None => inner.write_empty()?,
        };
        Ok::<(), io::Error>(())
    })?;
    Ok(())
}

fn seconds(s: f64) -> String {
    format!("{s:.3}")
}

/// `text` without what XML 1.0 cannot carry at all, escaped or not: terminal colour sequences
/// (test runners' output in a diagnosis) are dropped whole, other control characters replaced.
pub fn xml_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters... final byte in @..~
                if chars.next_if_eq(&'[').is_some() {
                    while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                }
            }
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn step(id: &str, needs: &[&str], span: Option<(u128, u128)>, outcome: Outcome) -> StepRecord {
        StepRecord::for_test(id, needs, span, outcome)
    }
    use crate::runner::{RunReport, StepFailure};

    fn failed_setup() -> RunReport {
        RunReport {
            steps: vec![
                step("postgres", &[], Some((0, 1500)), Outcome::Ready),
                step("redis", &[], Some((0, 2000)), Outcome::Stopped),
                step("migrations", &["postgres"], Some((1500, 2000)), Outcome::Failed),
                step("datastorage", &["migrations", "redis"], None, Outcome::NotStarted),
            ],
            wall_ms: 2000,
            critical_path: vec!["postgres".into(), "migrations".into()],
            critical_ms: 2000,
            sequential_ms: 4000,
            failure: Some((
                "migrations".into(),
                StepFailure {
                    message: "00042_audit.sql line 3: relation \"a<b\" & 'c' does not exist\nmore".into(),
                    diagnosis: Some("\u{1b}[31mERROR\u{1b}[0m: <none> & \"quoted\"\u{7}".into()),
                    diagnosis_json: None,
                },
            )),
            interrupted: false,
        }
    }

    fn finished<'a>(setup: &'a RunReport, tests: &'a Tests) -> Finished<'a> {
        Finished { suite: "gateway", backend: "local", run: Some("gateway-1"), setup, tests }
    }

    #[test]
    fn a_failed_setup_maps_each_step_and_escapes_the_message() {
        let setup = failed_setup();
        let tests = Tests::SetupFailed("migrations failed".into());
        insta::assert_snapshot!(render(&finished(&setup, &tests)));
    }

    #[test]
    fn failing_tests_carry_the_diagnosis() {
        let mut setup = failed_setup();
        setup.failure = None;
        for s in &mut setup.steps {
            s.outcome = Outcome::Ready;
            s.start_ms.get_or_insert(2000);
            s.end_ms.get_or_insert(2500);
        }
        let tests = Tests::Ran {
            outcome: TestOutcome::Failed("exit status: 101".into()),
            took: Duration::from_millis(12_345),
            diagnosis: Some("--- datastorage:\nGET /readyz -> 503 <schema_incomplete>".into()),
        };
        let xml = render(&finished(&setup, &tests));
        assert!(xml.contains(r#"<testsuites name="gateway (local)" tests="5" failures="1" errors="0" skipped="0" time="16.845">"#), "{xml}");
        assert!(xml.contains(r#"<testcase classname="suite" name="gateway" time="12.345">"#), "{xml}");
        assert!(
            xml.contains(
                r#"<failure message="the tests failed: exit status: 101">the tests failed: exit status: 101"#
            ),
            "{xml}"
        );
        assert!(xml.contains("GET /readyz -&gt; 503 &lt;schema_incomplete&gt;</failure>"), "{xml}");
    }

    #[test]
    fn passing_tests_have_no_failure_and_infra_up_has_no_suite_case() {
        let mut setup = failed_setup();
        setup.failure = None;
        setup.steps.truncate(1);
        let passed =
            Tests::Ran { outcome: TestOutcome::Passed, took: Duration::from_secs(3), diagnosis: None };
        let xml = render(&finished(&setup, &passed));
        assert!(!xml.contains("<failure") && !xml.contains("<error") && !xml.contains("<skipped"), "{xml}");
        assert!(xml.contains(r#"<testcase classname="suite" name="gateway" time="3.000"/>"#), "{xml}");
        let xml = render(&finished(&setup, &Tests::NotPart));
        assert!(xml.contains(r#"tests="1""#) && !xml.contains(r#"classname="suite""#), "{xml}");
    }

    #[test]
    fn what_xml_cannot_carry_is_dropped_or_replaced() {
        assert_eq!(xml_safe("\u{1b}[1;31mred\u{1b}[0m\ttab\u{0}\u{8}"), "red\ttab\u{fffd}\u{fffd}");
    }
}
