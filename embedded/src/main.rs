//! The bit-identity firmware: runs every case of `firmware::cases` on the scalar and portable
//! backends, on `apply` (the best backend) and as two pieces, on a run-time length (f32 cases,
//! bf16/f16 parameters with stochastic rounding or Kahan compensation, bf16/f16 and 8-bit,
//! 4-bit and float8 state), compares every value with
//! the bits recorded on x86_64, prints one line per case through semihosting and exits with
//! status 0 only if every value matched.
//!
//! Run: `cargo run --release --target thumbv7em-none-eabihf` (QEMU `mps2-an386`, a Cortex-M4F);
//! the other targets and their QEMU machines are in `.cargo/config.toml` and `docs/targets.md`.
//! With the feature `microbit` (the nRF51's 256 KiB of flash and 16 KiB of RAM) the firmware
//! runs the f32 cases on the scalar, portable and best backends (not as two pieces, whose
//! storage-format code would not fit), and reports each storage-format case as skipped.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod firmware_main {
    use firmware::expected::EXPECTED;
    use firmware::rt::{Line, exit, runtime_len};
    use firmware::{
        MAX_OUT, N, Path, Storage, Visit, cases, first_difference, run_case, run_sparse_case,
    };
    use fused_optim::{Optimizer, SparseAdam};

    struct Check {
        n: usize,
        out: [u32; MAX_OUT],
        index: usize,
        values: usize,
        failures: usize,
        skipped: usize,
    }

    impl Visit for Check {
        fn case_in<O: Optimizer>(
            &mut self,
            name: &'static str,
            first_step: u64,
            opt: O,
            storage: &Storage,
        ) {
            // A run-time length: the f32 cases' N read through a volatile load, scaled to the
            // case's length.
            // The `microbit` build (256 KiB of flash, 16 KiB of RAM) runs the f32 cases only,
            // and those without the two-piece path (the storage-format code it needs).
            if cfg!(feature = "microbit") && !storage.is_f32() {
                self.index = self.index.wrapping_add(1);
                Line::default()
                    .str("skip ")
                    .str(name)
                    .str(": storage formats are not in the micro:bit build")
                    .print();
                self.skipped = self.skipped.saturating_add(1);
                return;
            }
            let n = storage.n.wrapping_mul(self.n) / N;
            let want = EXPECTED.get(self.index);
            self.index = self.index.wrapping_add(1);
            let mut line = Line::default();

            let Some((want_name, want)) = want.filter(|(w, _)| *w == name) else {
                line.str("FAIL ")
                    .str(name)
                    .str(": no recorded bits (regenerate expected.rs)")
                    .print();
                self.failures = self.failures.saturating_add(1);
                return;
            };
            let _ = want_name;
            for path in Path::ALL {
                if cfg!(feature = "microbit") && path == Path::Pieces {
                    continue;
                }
                let out = &mut self.out;
                match run_case(&opt, first_step, path, storage, n, out) {
                    Ok(len) => {
                        let got = out.get_mut(..len).unwrap_or_default();
                        // CI builds this feature to show that a wrong bit fails the run.
                        #[cfg(feature = "mismatch-canary")]
                        if let Some(x) = got.get_mut(self.index % len.max(1)) {
                            *x ^= 1;
                        }
                        let got = &*got;
                        if let Some(i) = first_difference(got, want) {
                            let g = got.get(i).copied().unwrap_or(0);
                            let w = want.get(i).copied().unwrap_or(0);
                            line.str("FAIL ")
                                .str(name)
                                .str(" on ")
                                .str(path.name())
                                .str(": value ")
                                .dec(i)
                                .str(" is ")
                                .hex(g)
                                .str(", x86_64 has ")
                                .hex(w)
                                .print();
                            self.failures = self.failures.saturating_add(1);
                        } else {
                            self.values = self.values.saturating_add(len);
                        }
                    }
                    Err(_) => {
                        line.str("FAIL ")
                            .str(name)
                            .str(" on ")
                            .str(path.name())
                            .str(": error")
                            .print();
                        self.failures = self.failures.saturating_add(1);
                    }
                }
            }
            line.str("case ")
                .str(name)
                .str(if cfg!(feature = "microbit") {
                    ": scalar, portable, best checked ("
                } else {
                    ": scalar, portable, best, two pieces checked ("
                })
                .dec(want.len())
                .str(" values each)")
                .print();
        }

        fn sparse_case(&mut self, name: &'static str, first_step: u64, opt: SparseAdam) {
            self.sparse(name, first_step, opt);
        }
    }

    impl Check {
        /// SparseAdam's cases: rows of a table whose row length is the run-time length. Every
        /// path's output is compared with the recorded bits.
        fn sparse(&mut self, name: &'static str, first_step: u64, opt: SparseAdam) {
            let want = EXPECTED.get(self.index);
            self.index = self.index.wrapping_add(1);
            let Some((_, want)) = want.filter(|(w, _)| *w == name) else {
                Line::default()
                    .str("FAIL ")
                    .str(name)
                    .str(": no recorded bits (regenerate expected.rs)")
                    .print();
                self.failures = self.failures.saturating_add(1);
                return;
            };
            let mut line = Line::default();
            for path in Path::ALL {
                match run_sparse_case(&opt, first_step, path, self.n, &mut self.out) {
                    Ok(len) => {
                        let got = self.out.get_mut(..len).unwrap_or_default();
                        #[cfg(feature = "mismatch-canary")]
                        if let Some(x) = got.get_mut(self.index % len.max(1)) {
                            *x ^= 1;
                        }
                        let got = &*got;
                        if let Some(i) = first_difference(got, want) {
                            let g = got.get(i).copied().unwrap_or(0);
                            let w = want.get(i).copied().unwrap_or(0);
                            line.str("FAIL ")
                                .str(name)
                                .str(" on ")
                                .str(path.name())
                                .str(": value ")
                                .dec(i)
                                .str(" is ")
                                .hex(g)
                                .str(", x86_64 has ")
                                .hex(w)
                                .print();
                            self.failures = self.failures.saturating_add(1);
                        } else {
                            self.values = self.values.saturating_add(len);
                        }
                    }
                    Err(_) => {
                        line.str("FAIL ")
                            .str(name)
                            .str(" on ")
                            .str(path.name())
                            .str(": error")
                            .print();
                        self.failures = self.failures.saturating_add(1);
                    }
                }
            }
            line.str("case ")
                .str(name)
                .str(": scalar, portable, best, rows in two calls checked (")
                .dec(want.len())
                .str(" values of each)")
                .print();
        }
    }

    firmware::entry!(main);

    fn main() -> ! {
        let mut check = Check {
            n: runtime_len(),
            out: [0; MAX_OUT],
            index: 0,
            values: 0,
            failures: 0,
            skipped: 0,
        };
        // CI builds this feature to show that the link-time panic check works: an index the
        // compiler cannot bound keeps a bounds-check panic, and the link must fail.
        #[cfg(feature = "panic-canary")]
        {
            let table = [1usize, 2, 3];
            check.values = table[runtime_len()];
        }
        cases(&mut check);
        let mut line = Line::default();
        if check.index != EXPECTED.len() {
            line.str("FAIL expected.rs has ")
                .dec(EXPECTED.len())
                .str(" cases, the firmware ran ")
                .dec(check.index)
                .print();
            check.failures = check.failures.saturating_add(1);
        }
        line.str("bit identity: ")
            .dec(check.index)
            .str(" cases, ")
            .dec(check.values)
            .str(" values identical to x86_64, ")
            .dec(check.failures)
            .str(" failures, ")
            .dec(check.skipped)
            .str(" cases skipped")
            .print();
        // A build that skips every case proves nothing.
        if check.skipped >= check.index {
            check.failures = check.failures.saturating_add(1);
        }
        exit(check.failures == 0)
    }
}

/// On a host the firmware has nothing to do: `cargo test --lib` is the host side.
#[cfg(not(target_os = "none"))]
fn main() {}
