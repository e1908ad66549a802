//! `tolk-loadtest`: replays event profiles against a relay. Not built yet (see the issue
//! "Benchmarks and load tests"); this binary says so instead of pretending.

fn main() {
    eprintln!("tolk-loadtest is not implemented yet: the load generator arrives with the load-test issue.");
    std::process::exit(2);
}
