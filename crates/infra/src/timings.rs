//! A run's timings as one self-contained HTML page (like `cargo build --timings`): every step a
//! bar on a shared time axis, coloured by outcome, the critical path highlighted, and for each
//! step what it waited for and when that was ready. Inline CSS only: no script, nothing fetched,
//! so the file can be attached to a CI run and opened anywhere.

use std::fmt::Write as _;

use crate::report::{Finished, Tests};
use crate::runner::Outcome;
use crate::session::TestOutcome;

/// One bar on the page.
struct Row {
    name: String,
    description: String,
    span: Option<(u128, u128)>,
    /// The CSS class of its outcome: `ready`, `failed`, `stopped`, `not-started`, `background`.
    class: &'static str,
    critical: bool,
    /// The steps it waited for, by name.
    needs: String,
    /// The same with when each was ready.
    waited: String,
}

/// The page for a finished run.
pub fn html(run: &Finished) -> String {
    let setup = run.setup;
    let fmt_s = |ms: u128| format!("{:.1} s", ms as f64 / 1000.0);
    let mut rows: Vec<Row> = setup
        .steps
        .iter()
        .map(|r| {
            let waited = setup.waited_for(r);
            let waited = if r.background {
                format!("the run to be ready ({}): a background step", fmt_s(setup.wall_ms))
            } else if waited.is_empty() {
                "nothing: started at once".to_string()
            } else {
                let each: Vec<String> = waited
                    .iter()
                    .map(|(n, at)| match at {
                        Some(at) => format!("{n} (ready at {})", fmt_s(*at)),
                        None => format!("{n} (never ready)"),
                    })
                    .collect();
                each.join(", ")
            };
            Row {
                name: r.step.clone(),
                description: r.description.clone(),
                span: r.start_ms.zip(r.end_ms),
                class: match r.outcome {
                    _ if r.background => "background",
                    Outcome::Ready => "ready",
                    Outcome::Failed => "failed",
                    Outcome::Stopped => "stopped",
                    Outcome::NotStarted => "not-started",
                    Outcome::Background => "background",
                },
                critical: setup.critical_path.contains(&r.step),
                needs: r.needs.join(", "),
                waited,
            }
        })
        .collect();
    let verdict = match run.tests {
        Tests::NotPart if setup.ok() => "up".to_string(),
        Tests::NotPart => "did not come up".to_string(),
        Tests::Ran { outcome: TestOutcome::Passed, .. } => "PASSED".to_string(),
        Tests::Ran { outcome: TestOutcome::Failed(s), .. } => format!("FAILED ({s})"),
        Tests::Ran { outcome: TestOutcome::TimedOut(d), .. } => format!("TIMED OUT after {} s", d.as_secs()),
        Tests::Ran { outcome: TestOutcome::Interrupted, .. } | Tests::Interrupted => {
            "INTERRUPTED".to_string()
        }
        Tests::SetupFailed(_) => "the environment did not come up".to_string(),
    };
    let mut tests_ms = None;
    if let Tests::Ran { outcome, took, .. } = run.tests {
        // The tests start once setup is done and wait for all of it.
        let took = took.as_millis();
        tests_ms = Some(took);
        rows.push(Row {
            name: format!("tests: {}", run.suite),
            description: "the suite's test command, against the environment".into(),
            span: Some((setup.wall_ms, setup.wall_ms + took)),
            class: match outcome {
                TestOutcome::Passed => "ready",
                TestOutcome::Interrupted => "stopped",
                _ => "failed",
            },
            critical: true,
            needs: "the whole setup".into(),
            waited: format!("the whole setup (ready at {})", fmt_s(setup.wall_ms)),
        });
    }
    let span = rows.iter().filter_map(|r| r.span.map(|s| s.1)).max().unwrap_or(0).max(setup.wall_ms).max(1);
    let pct = |ms: u128| ms as f64 * 100.0 / span as f64;

    let mut h = String::new();
    let title = format!("{} on {}: {verdict}", run.suite, run.backend);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>timings: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let mut facts = Vec::new();
    if let Some(id) = run.run {
        facts.push(format!("run <code>{}</code>", esc(id)));
    }
    facts.push(format!("setup wall time <b>{}</b>", fmt_s(setup.wall_ms)));
    facts.push(format!("critical path <b>{}</b>", fmt_s(setup.critical_ms)));
    facts.push(format!("the same steps one after another {}", fmt_s(setup.sequential_ms)));
    if let Some(t) = tests_ms {
        facts.push(format!("tests <b>{}</b>", fmt_s(t)));
    }
    let _ = writeln!(h, "<p class=\"facts\">{}</p>", facts.join(" · "));
    if !setup.critical_path.is_empty() {
        let path: Vec<String> =
            setup.critical_path.iter().map(|s| format!("<code>{}</code>", esc(s))).collect();
        let _ = writeln!(
            h,
            "<p class=\"path\"><span class=\"swatch crit\"></span> critical path: {} = {} of {} wall time</p>",
            path.join(" → "),
            fmt_s(setup.critical_ms),
            fmt_s(setup.wall_ms)
        );
    }

    // The chart: a row of axis labels, then one row per step; every track draws the tick lines
    // as a background repeating once per tick, so they line up across rows.
    let ticks = ticks(span);
    let tick_every = ticks.get(1).map_or(100.0, |t| pct(*t));
    let _ = writeln!(h, "<div class=\"chart\" style=\"--tick:{tick_every:.3}%\">");
    let _ = write!(h, "<div class=\"head\">step</div><div class=\"axis\">");
    for t in &ticks {
        let _ = write!(h, "<span style=\"left:{:.2}%\">{}</span>", pct(*t), tick_label(*t));
    }
    let _ = writeln!(h, "</div><div class=\"head took\">took</div>");
    for r in &rows {
        let crit = if r.critical { " crit" } else { "" };
        let tip = format!("{}: {}; waited for {}", r.name, r.description, r.waited);
        let after = match (r.class, r.needs.is_empty()) {
            ("background", _) => format!("once the run was ready, needing {}", r.needs),
            (_, true) => "at once".to_string(),
            (_, false) => format!("after {}", r.needs),
        };
        let _ = write!(
            h,
            "<div class=\"name{crit}\" title=\"{}\">{}<small>{}</small></div>",
            esc(&tip),
            esc(&r.name),
            esc(&after)
        );
        let _ = write!(h, "<div class=\"track\">");
        match r.span {
            Some((a, b)) => {
                let _ = write!(
                    h,
                    "<div class=\"bar {}{crit}\" style=\"left:{:.2}%;width:{:.2}%\" title=\"{}\"></div>",
                    r.class,
                    pct(a),
                    pct(b - a),
                    esc(&format!("{} .. {}", fmt_s(a), fmt_s(b)))
                );
            }
            None => {
                let note = if r.class == "background" {
                    "in the background, after this report"
                } else {
                    "not started"
                };
                let _ = write!(h, "<span class=\"note\">{note}</span>");
            }
        }
        let took = r.span.map(|(a, b)| format!("{:.2} s", (b - a) as f64 / 1000.0)).unwrap_or_default();
        let _ = writeln!(h, "</div><div class=\"took\">{took}</div>");
    }
    let _ = writeln!(h, "</div>");
    let _ = writeln!(
        h,
        "<p class=\"legend\"><span class=\"swatch ready\"></span> ready <span class=\"swatch ready crit\"></span> \
         ready, on the critical path <span class=\"swatch background\"></span> in the background, once the run was ready \
         <span class=\"swatch failed\"></span> failed <span class=\"swatch stopped\"></span> stopped when another step failed</p>"
    );

    // The same facts as a table, for reading exact numbers and what each step waited for.
    let _ = writeln!(
        h,
        "<table>\n<tr><th>step</th><th>what it does</th><th>waited for</th><th>started</th><th>ended</th><th>took</th><th>outcome</th></tr>"
    );
    for r in &rows {
        let (start, end, took) = match r.span {
            Some((a, b)) => (fmt_s(a), fmt_s(b), format!("{:.2} s", (b - a) as f64 / 1000.0)),
            None => Default::default(),
        };
        let crit = if r.critical { " class=\"crit\"" } else { "" };
        let _ = writeln!(
            h,
            "<tr{crit}><td><code>{}</code></td><td>{}</td><td>{}</td><td>{start}</td><td>{end}</td><td>{took}</td><td class=\"{}\">{}</td></tr>",
            esc(&r.name),
            esc(&r.description),
            esc(&r.waited),
            r.class,
            match (r.class, r.span) {
                ("background", Some(_)) => "ready, in the background".to_string(),
                ("background", None) => "running in the background".to_string(),
                (class, _) => class.replace('-', " "),
            }
        );
    }
    let _ = writeln!(h, "</table>");

    if let Some((step, f)) = &setup.failure {
        let text = match &f.diagnosis {
            Some(d) => format!("{}\n\n{d}", f.message),
            None => f.message.clone(),
        };
        let _ = writeln!(h, "<h2>{} failed</h2>\n<pre>{}</pre>", esc(step), esc(&text));
    }
    if let Tests::Ran { diagnosis: Some(d), .. } = run.tests {
        let _ = writeln!(h, "<h2>diagnosis (last log lines of each component)</h2>\n<pre>{}</pre>", esc(d));
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// Tick positions in milliseconds: a round step giving at most ten ticks across `span`.
fn ticks(span: u128) -> Vec<u128> {
    const STEPS: [u128; 14] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
        1_800_000,
    ];
    let step = STEPS.into_iter().find(|s| span / s <= 10).unwrap_or(span.div_ceil(10).max(1));
    (0..=span / step).map(|i| i * step).collect()
}

fn tick_label(ms: u128) -> String {
    if ms.is_multiple_of(1000) { format!("{} s", ms / 1000) } else { format!("{:.1} s", ms as f64 / 1000.0) }
}

/// `text` escaped for HTML text and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    crate::junit::xml_safe(&out)
}

const CSS: &str = "
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #1d1d1f; }
h1 { font-size: 20px; margin: 0 0 6px; }
h2 { font-size: 16px; margin: 24px 0 6px; }
p { margin: 4px 0; }
.facts { color: #444; }
code { font: 13px ui-monospace, monospace; }
.chart { display: grid; grid-template-columns: minmax(9em, max-content) minmax(50%, 1fr) 5.5em;
  column-gap: 14px; align-items: center; margin: 18px 0 8px; }
.head { font-weight: 600; color: #555; }
.axis { position: relative; height: 20px; grid-column: 2; }
.axis span { position: absolute; transform: translateX(-50%); font-size: 12px; color: #555; white-space: nowrap; }
.axis span:first-child { transform: none; }
.name { font: 13px ui-monospace, monospace; white-space: nowrap; padding: 3px 0; max-width: 22em; }
.name small { display: block; font: 11px system-ui, sans-serif; color: #777; white-space: normal; }
.name.crit { font-weight: 700; }
.track { position: relative; align-self: stretch; min-height: 26px;
  background: repeating-linear-gradient(to right, #e3e3e3 0 1px, transparent 1px var(--tick)); }
.bar { position: absolute; top: 50%; height: 16px; margin-top: -8px; min-width: 2px; border-radius: 3px; }
.took { text-align: right; font: 13px ui-monospace, monospace; color: #333; }
.ready { background: #a5d6a7; }
.ready.crit { background: #2e7d32; }
.failed { background: #e53935; }
.background { background: #90caf9; }
.stopped { background: repeating-linear-gradient(45deg, #bdbdbd 0 4px, #e0e0e0 4px 8px); }
.bar.crit { outline: 2px solid #ef6c00; outline-offset: 1px; }
.note { position: absolute; left: 4px; top: 50%; margin-top: -8px; font-size: 12px; color: #888; font-style: italic; }
.swatch { display: inline-block; width: 22px; height: 10px; border-radius: 2px; vertical-align: middle; margin: 0 6px 0 14px; }
.swatch.crit { outline: 2px solid #ef6c00; outline-offset: 1px; }
.path .swatch { margin-left: 3px; background: #2e7d32; }
.legend { color: #555; font-size: 12px; }
table { border-collapse: collapse; margin-top: 18px; font-size: 13px; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #eee; vertical-align: top; }
td:nth-child(n+4) { white-space: nowrap; }
tr.crit td:first-child { border-left: 3px solid #ef6c00; font-weight: 700; }
td.ready, td.failed, td.stopped, td.background { background: none; }
td.failed { color: #c62828; font-weight: 700; }
pre { background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 12px; white-space: pre-wrap; }
";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn step(id: &str, needs: &[&str], span: Option<(u128, u128)>, outcome: Outcome) -> StepRecord {
        StepRecord::for_test(id, needs, span, outcome)
    }
    use crate::runner::{RunReport, StepFailure, StepRecord};

    fn report() -> RunReport {
        RunReport {
            steps: vec![
                step("build-datastorage", &[], Some((0, 1000)), Outcome::Ready),
                step("postgres", &[], Some((0, 2000)), Outcome::Ready),
                step("redis", &[], Some((0, 500)), Outcome::Ready),
                step("migrations", &["postgres"], Some((2000, 3000)), Outcome::Ready),
                step(
                    "datastorage",
                    &["build-datastorage", "migrations", "redis"],
                    Some((3000, 4000)),
                    Outcome::Ready,
                ),
            ],
            wall_ms: 4000,
            critical_path: vec!["postgres".into(), "migrations".into(), "datastorage".into()],
            critical_ms: 4000,
            sequential_ms: 5500,
            failure: None,
            interrupted: false,
        }
    }

    fn page(report: &RunReport, tests: &Tests) -> String {
        html(&Finished { suite: "gateway", backend: "local", run: Some("gateway-1"), setup: report, tests })
    }

    /// The `left` and `width` percentages of the bar in the track after `name`'s row.
    fn bar(page: &str, name: &str) -> (f64, f64) {
        let row = page.find(&format!("\">{name}<small>")).unwrap_or_else(|| panic!("no row {name}"));
        let style = &page[row..];
        let style = &style[style.find("style=\"left:").expect("a bar") + 12..];
        let (left, rest) = style.split_once("%;width:").unwrap();
        let width = rest.split_once('%').unwrap().0;
        (left.parse().unwrap(), width.parse().unwrap())
    }

    #[test]
    fn every_step_is_a_bar_proportional_to_its_time() {
        let page = page(&report(), &Tests::NotPart);
        assert_eq!(bar(&page, "postgres"), (0.0, 50.0), "half the wall time is half the axis");
        assert_eq!(bar(&page, "migrations"), (50.0, 25.0));
        assert_eq!(bar(&page, "redis"), (0.0, 12.5));
        assert_eq!(bar(&page, "datastorage"), (75.0, 25.0));
        assert_eq!(page.matches("<div class=\"bar ").count(), 5, "{page}");
    }

    #[test]
    fn the_critical_path_is_marked_and_only_it() {
        let page = page(&report(), &Tests::NotPart);
        assert_eq!(page.matches("class=\"bar ready crit\"").count(), 3, "{page}");
        assert!(page.contains("<div class=\"name\" title=\"redis"), "redis is off the critical path");
        assert!(page.contains("<div class=\"name crit\" title=\"migrations"), "{page}");
        assert!(page.contains(
            "<code>postgres</code> → <code>migrations</code> → <code>datastorage</code> = 4.0 s of 4.0 s"
        ));
    }

    #[test]
    fn each_step_says_what_it_waited_for_and_when_that_was_ready() {
        let page = page(&report(), &Tests::NotPart);
        assert!(
            page.contains(">datastorage<small>after build-datastorage, migrations, redis</small>"),
            "{page}"
        );
        assert!(page.contains(">postgres<small>at once</small>"), "{page}");
        assert!(
            page.contains(
                "<td>build-datastorage (ready at 1.0 s), migrations (ready at 3.0 s), redis (ready at 0.5 s)</td>"
            ),
            "{page}"
        );
        assert!(page.contains("<td>nothing: started at once</td>"), "{page}");
    }

    #[test]
    fn a_background_step_is_drawn_apart_and_says_it_ran_once_the_run_was_ready() {
        let mut r = report();
        let mut keeper = step("snapshot", &["migrations"], Some((4000, 6000)), Outcome::Ready);
        keeper.background = true;
        r.steps.push(keeper);
        let done = page(&r, &Tests::NotPart);
        assert!(done.contains("<div class=\"bar background\""), "its own colour: {done}");
        assert!(
            done.contains(">snapshot<small>once the run was ready, needing migrations</small>"),
            "{done}"
        );
        assert!(done.contains("<td>the run to be ready (4.0 s): a background step</td>"), "{done}");
        // Still running when `infra up` reported: no bar, and no "not started".
        r.steps.last_mut().unwrap().start_ms = None;
        r.steps.last_mut().unwrap().end_ms = None;
        r.steps.last_mut().unwrap().outcome = Outcome::Background;
        let running = page(&r, &Tests::NotPart);
        assert!(running.contains("in the background, after this report"), "{running}");
        assert_eq!(running.matches("not started").count(), 0, "{running}");
    }

    #[test]
    fn the_tests_follow_setup_on_the_same_axis() {
        let tests = Tests::Ran {
            outcome: TestOutcome::Failed("exit status: 3".into()),
            took: Duration::from_secs(4),
            diagnosis: Some("--- redis: <oom>".into()),
        };
        let page = page(&report(), &tests);
        assert_eq!(bar(&page, "tests: gateway"), (50.0, 50.0));
        assert!(page.contains("class=\"bar failed crit\""), "{page}");
        assert!(page.contains("<h1>gateway on local: FAILED (exit status: 3)</h1>"), "{page}");
        assert!(page.contains("--- redis: &lt;oom&gt;"), "{page}");
    }

    #[test]
    fn a_failed_step_shows_its_message_escaped_and_what_never_started() {
        let mut r = report();
        r.steps[3].outcome = Outcome::Failed;
        r.steps[4] = step("datastorage", &["migrations"], None, Outcome::NotStarted);
        r.failure = Some(("migrations".into(), StepFailure::new("relation \"a<b\" & c")));
        let page = page(&r, &Tests::SetupFailed("migrations failed".into()));
        assert!(
            page.contains("<h2>migrations failed</h2>\n<pre>relation &quot;a&lt;b&quot; &amp; c</pre>"),
            "{page}"
        );
        assert!(page.contains("<span class=\"note\">not started</span>"));
        assert!(page.contains("<td>migrations (never ready)</td>"), "{page}");
        assert!(!page.contains("<script") && !page.contains("http"), "self-contained");
    }

    #[test]
    fn ticks_are_round_and_cover_the_span() {
        assert_eq!(ticks(4000), [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000]);
        assert_eq!(
            ticks(95_000),
            [0, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 90_000]
        );
        assert_eq!(tick_label(1500), "1.5 s");
        assert_eq!(tick_label(30_000), "30 s");
    }
}
