//! Issue 14, link faults: latency, loss, bandwidth and reset on the
//! primary's links in proxy mode (the link proxies) and in netns mode (the
//! NFQUEUE verdict loop), each with its measured evidence; a link fault the
//! system's traffic never meets is ineffective, one that cannot be honoured
//! is an error, and one on plain loopback is refused before the run.

use crate::util::*;

/// The number after `needle` in `text` ("... rtt median 201.3 ms").
fn figure_after(text: &str, needle: &str) -> f64 {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in {text}"))
        + needle.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no figure after {needle:?} in {text}"))
}

/// Each effect of class `fault` in `run`.
fn effects_of(run: &Run, fault: &str) -> Vec<serde_json::Value> {
    run.cycles()
        .iter()
        .filter(|c| c["class"] == fault)
        .flat_map(|c| c["effects"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn link_faults_in_proxy_mode_show_their_measured_evidence() {
    link_faults_show_their_measured_evidence("proxy");
}

#[test]
fn link_faults_in_netns_mode_show_their_measured_evidence() {
    link_faults_show_their_measured_evidence("netns");
}

fn link_faults_show_their_measured_evidence(net: &str) {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    // What the mechanism loses: stream chunks (stalled) or packets.
    let unit = if net == "netns" { "packet" } else { "chunk" };
    let mut args: Vec<String> = [
        "--cycles",
        "1",
        "--writes",
        "60",
        "--settle-ms",
        "3000",
        "--net",
        net,
        "--param",
        "slow_link.jitter_ms=0",
        "--param",
        "bandwidth_cap.bytes_per_s=20000",
        "--param",
        "link_fault.reset=true",
    ]
    .map(String::from)
    .to_vec();
    for name in ["slow_link", "lossy_link", "bandwidth_cap"] {
        args.extend(["--plugin".into(), plugin(name).display().to_string()]);
        args.extend(["--allow".into(), format!("{name}=link")]);
    }
    args.extend(["--plugin".into(), guest("link_fault").display().to_string()]);
    args.extend(["--allow".into(), "link_fault=link".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_campaign(dir.path(), &c, &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for fault in ["slow_link", "lossy_link", "bandwidth_cap", "link_fault"] {
        let fx = effects_of(&run, fault);
        assert_eq!(fx.len(), 1, "{fault}: {fx:?}");
        let e = &fx[0];
        assert_eq!(e["kind"], "link", "{e}");
        assert_eq!(e["verified"], true, "{e}");
        assert!(
            e["detail"].as_str().unwrap().contains(&format!("({net})")),
            "{e}"
        );
        let ev = e["evidence"].as_str().unwrap();
        // The primary's two outbound links, each measured and each met by
        // the system's own traffic.
        let (measures, lifted) = ev.split_once("; lifted").unwrap();
        let measures = measures.replace(": ", "; ");
        for link in ["0->1", "0->2"] {
            let measured = measures
                .split("; ")
                .find(|p| p.starts_with(&format!("{link} ")))
                .unwrap_or_else(|| panic!("{link} not measured: {e}"));
            match fault {
                "slow_link" => {
                    let rtt = figure_after(measured, "rtt median ");
                    assert!((180.0..=220.0).contains(&rtt), "200 ms asked: {e}");
                }
                "lossy_link" => {
                    let lost = figure_after(measured, &format!("{link} "));
                    assert!(
                        lost > 0.0 && measured.contains(&format!("probe {unit}(s) lost")),
                        "{e}"
                    );
                }
                "bandwidth_cap" => {
                    // netns caps whole IP packets, as a real link does: the
                    // payload the echo measures runs ~5 % under the cap.
                    let rate = figure_after(measured, "throughput ");
                    let floor = if net == "netns" { 16_000.0 } else { 18_000.0 };
                    assert!((floor..=22_000.0).contains(&rate), "20000 B/s asked: {e}");
                }
                _ => assert!(measured.contains("probe connection reset"), "{e}"),
            }
        }
        assert!(lifted.contains("met it on 2 of 2 link(s)"), "{e}");
        if fault == "link_fault" {
            let reset = figure_after(lifted, "0 lost, ");
            assert!(reset > 0.0, "connections reset: {e}");
        }
    }
}

#[test]
fn a_link_fault_that_cannot_be_honoured_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let g = guest("link_fault");
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            g.to_str().unwrap(),
            "--allow",
            "link_fault=link",
            "--param",
            "link_fault.latency_ms=3000",
            "--param",
            "link_fault.ms=1000",
            "--cycles",
            "1",
            "--writes",
            "20",
            "--net",
            "proxy",
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let c = &run.cycles()[0];
    assert_eq!(c["status"], "error", "{c}");
    assert!(c["effects"].as_array().unwrap().is_empty(), "{c}");
    assert!(
        c["reasons"]
            .to_string()
            .contains("does not fit in the 1000 ms lease"),
        "{c}"
    );
}

#[test]
fn a_link_fault_on_plain_loopback_is_refused_before_the_run() {
    {
        let (net, why) = ("loopback", "plain loopback has no links");
        let dir = tempfile::tempdir().unwrap();
        let c = campaign(dir.path(), false, |t| t);
        let p = plugin("slow_link");
        let run = run_campaign(
            dir.path(),
            &c,
            &[
                "--plugin",
                p.to_str().unwrap(),
                "--allow",
                "slow_link=link",
                "--net",
                net,
            ],
        );
        assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("plugin slow_link"), "{}", run.stderr);
        assert!(run.stderr.contains(why), "{}", run.stderr);
        assert!(run.stderr.contains("--net proxy"), "{}", run.stderr);
        assert!(!run.out.join("cycles.jsonl").exists(), "nothing written");
    }
}
