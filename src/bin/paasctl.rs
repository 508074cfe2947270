//! paasctl: plan, apply and inspect paasd's declarative accounts (see [`paasd::cli`]).

fn main() -> std::process::ExitCode {
    paasd::cli::main()
}
