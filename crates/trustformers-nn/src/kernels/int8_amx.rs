//! The int8 kernel on AMX tiles (see the parent module): permission from Linux, the
//! per-thread tile configuration, and one 16-row tile of sums against two panels.

use super::{Epilogue, OutPtr, Tile, KPAD, MR_AMX, NR};
use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Whether the CPU has AMX tiles with int8 products and Linux lets this process use
/// them (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once).
pub(super) fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
        let leaf = __cpuid_count(7, 0);
        if leaf.edx & (3 << 24) != 3 << 24 {
            return false;
        }
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
        const XFEATURE_XTILEDATA: usize = 18;
        let ret: i64;
        // SAFETY: the arch_prctl system call with its documented arguments; it only
        // changes which register state this process may use.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    })
}

/// This thread's tile configuration while alive: five tiles of 16 rows of 64 bytes
/// (two of sums, one of activations, two of weights); released on drop.
pub(super) struct Tiles;

impl Tiles {
    /// # Safety
    /// AMX must be [enabled].
    pub(super) unsafe fn configure() -> Self {
        #[repr(C, align(64))]
        struct Config([u8; 64]);
        let mut config = Config([0; 64]);
        // Palette 1; tile `t`: bytes per row at 16 + 2t (u16), rows at 48 + t.
        config.0[0] = 1;
        for t in 0..5 {
            config.0[16 + 2 * t] = KPAD as u8;
            config.0[48 + t] = MR_AMX as u8;
        }
        // SAFETY: AMX is enabled; the configuration is valid for palette 1.
        unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack)) };
        Tiles
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: tiles were configured on this thread by `configure`.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// `rows` rows of unsigned `a` (16 rows loaded, `kq` bytes each) by `width` (1 or 2)
/// panels from panel `j`, stored into `C` from row `i`: per 64 bytes of depth, one tile
/// of activations against each panel's tile of weights (a panel's 16 depth quads are 16
/// rows of 64 bytes, the layout `tdpbusd` reads).
///
/// # Safety
/// AMX enabled and this thread's [`Tiles`] configured, AVX-512F available; `a` holds
/// `16 * kq` bytes, `b` `width * kq * NR`; `C` as for [`super::vnni::tile`].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tile(tile: Tile<'_>, epi: &Epilogue<'_>, out: OutPtr) {
    let Tile {
        rows,
        width,
        kq,
        a,
        b,
        i,
        j,
    } = tile;
    debug_assert!(a.len() >= MR_AMX * kq && b.len() >= width * kq * NR && kq.is_multiple_of(KPAD));
    #[repr(C, align(64))]
    struct Sums([[i32; 2 * NR]; MR_AMX]);
    let mut sums = Sums([[0; 2 * NR]; MR_AMX]);
    let (a, b) = (a.as_ptr(), b.as_ptr());
    let panel = kq * NR;
    // SAFETY (whole body): tile loads read 16 rows of 64 bytes inside `a` (stride `kq`)
    // and `b` (stride 64); the stores write `sums`; the caller's guarantees otherwise.
    unsafe {
        asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem));
        for chunk in (0..kq).step_by(KPAD) {
            let weights = b.add(chunk * NR);
            asm!(
                "tileloadd tmm2, [{a} + {lda} * 1]",
                "tileloadd tmm3, [{b} + {ldb} * 1]",
                "tdpbusd tmm0, tmm2, tmm3",
                a = in(reg) a.add(chunk),
                lda = in(reg) kq,
                b = in(reg) weights,
                ldb = in(reg) KPAD,
                options(nostack, readonly),
            );
            if width == 2 {
                asm!(
                    "tileloadd tmm4, [{b} + {ldb} * 1]",
                    "tdpbusd tmm1, tmm2, tmm4",
                    b = in(reg) weights.add(panel),
                    ldb = in(reg) KPAD,
                    options(nostack, readonly),
                );
            }
        }
        asm!(
            "tilestored [{c} + {ldc} * 1], tmm0",
            "tilestored [{c2} + {ldc} * 1], tmm1",
            c = in(reg) sums.0.as_mut_ptr(),
            c2 = in(reg) sums.0.as_mut_ptr().cast::<i32>().add(NR),
            ldc = in(reg) 2 * NR * 4,
            options(nostack),
        );
        for h in 0..width {
            let col = (j + h) * NR;
            let sums_of = |r: usize| _mm512_loadu_si512(sums.0[r][h * NR..].as_ptr().cast());
            super::vnni::store_panel(sums_of, rows, i, col, epi, out);
        }
    }
}
