//! Tells the crate the git commit it is built from (`ORC_BENCH_GIT_COMMIT`), when git knows it,
//! so a saved baseline says which build measured it.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    if let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) {
        println!("cargo:rustc-env=ORC_BENCH_GIT_COMMIT={commit}");
        // Built again when HEAD moves: a checkout changes HEAD, a commit the branch's ref.
        for path in [git(&["rev-parse", "--git-path", "HEAD"])]
            .into_iter()
            .chain([git(&["symbolic-ref", "-q", "HEAD"])
                .and_then(|r| git(&["rev-parse", "--git-path", &r]))])
            .flatten()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
