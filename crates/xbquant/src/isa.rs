//! Which instruction set the kernels run with: the best the CPU has, detected at run time, or a
//! lower one chosen by the caller (to measure what a machine without AVX-512 gets).

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set the kernels are compiled for. On x86-64 each kernel exists in three
/// copies, and each call runs the best one the CPU supports (and
/// [`set_max_instruction_set`] allows); other architectures run the baseline copy, vectorized
/// as far as the target's default features go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum InstructionSet {
    /// The target's baseline features (SSE2 on x86-64).
    Baseline,
    /// AVX2 and FMA (x86-64-v3): most laptops and servers.
    Avx2,
    /// AVX-512 F, BW, CD, DQ and VL (x86-64-v4).
    Avx512,
}

impl fmt::Display for InstructionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstructionSet::Baseline => "baseline",
            InstructionSet::Avx2 => "AVX2+FMA (x86-64-v3)",
            InstructionSet::Avx512 => "AVX-512 (x86-64-v4)",
        })
    }
}

static MAX: AtomicU8 = AtomicU8::new(u8::MAX);

fn code(set: InstructionSet) -> u8 {
    match set {
        InstructionSet::Baseline => 0,
        InstructionSet::Avx2 => 1,
        InstructionSet::Avx512 => 2,
    }
}

/// The best instruction set this CPU supports, whatever the limit.
#[must_use]
pub fn detected_instruction_set() -> InstructionSet {
    #[cfg(target_arch = "x86_64")]
    {
        if pulp::x86::V4::try_new().is_some() {
            return InstructionSet::Avx512;
        }
        if pulp::x86::V3::try_new().is_some() {
            return InstructionSet::Avx2;
        }
    }
    InstructionSet::Baseline
}

/// The instruction set the kernels run with now: the detected one, at most the limit.
///
/// # Examples
///
/// ```
/// use xbquant::{instruction_set, set_max_instruction_set, InstructionSet};
/// let best = instruction_set();
/// set_max_instruction_set(InstructionSet::Baseline);
/// assert_eq!(instruction_set(), InstructionSet::Baseline);
/// set_max_instruction_set(InstructionSet::Avx512); // no limit
/// assert_eq!(instruction_set(), best);
/// ```
#[must_use]
pub fn instruction_set() -> InstructionSet {
    let best = detected_instruction_set();
    match MAX.load(Ordering::Relaxed) {
        0 => InstructionSet::Baseline,
        1 => best.min(InstructionSet::Avx2),
        _ => best,
    }
}

/// Limits the instruction set of every later kernel call in this process (results are the same
/// bits in every copy; only the speed changes). Meant for benchmarks: `xbquant bench --isa avx2`
/// measures on an AVX-512 machine what an AVX2 laptop gets.
pub fn set_max_instruction_set(max: InstructionSet) {
    MAX.store(code(max), Ordering::Relaxed);
}

/// The `pulp` dispatcher for [`instruction_set`]: the one the workspace's kernel crates
/// (`xbquant-analog`, `xbquant-fixed`) dispatch with, as `xbquant::pulp_arch`. Hidden from the
/// docs: its type is `pulp`'s, not part of this crate's API.
#[inline]
#[must_use]
pub fn arch() -> pulp::Arch {
    #[cfg(target_arch = "x86_64")]
    {
        match MAX.load(Ordering::Relaxed) {
            2.. => pulp::Arch::new(),
            1 => pulp::x86::V3::try_new().map_or(pulp::Arch::Scalar, pulp::Arch::V3),
            0 => pulp::Arch::Scalar,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        pulp::Arch::new()
    }
}
