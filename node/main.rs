//! The `troupe` binary: everything lives in `troupe_node::cli`.

fn main() -> std::process::ExitCode {
    troupe_node::cli::main()
}
