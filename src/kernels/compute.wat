;; Integer and 4-bit compute kernels in WebAssembly SIMD: 8-bit quantize/dequantize (ONNX
;; QuantizeLinear/DequantizeLinear), the int8 GEMM's raw product sums, and the 4-bit (MatMulNBits)
;; and codebook (MatMulBnb4) GEMV. Built by scripts/build-wasm.mjs into compute-wasm.generated.ts;
;; driven by compute-wasm.ts, which owns the memory layout. Each kernel's contract (and the
;; reference it equals bit for bit) is written above it.
(module
  (memory (export "memory") 1)

  ;; ---------------------------------------------------------------------------------------------
  ;; QuantizeLinear, the MLAS order: q = fround(x / s), clamp to [lo, hi] = [qmin − zp, qmax − zp],
  ;; round half to even, + zp. Vectors round by adding 1.5·2^23 (the clamped quotient is within
  ;; ±255, so the float32 sum is the integer nearest it, ties to even, in the low mantissa bits)
  ;; and read the integer from the bits, the zero point folded into the constant subtracted
  ;; (0x4B400000 − zp): two ops where f32x4.nearest + i32x4.trunc_sat_f32x4_s take many in V8.
  ;; The clamp is f32x4.pmax/pmin (one maxps/minps each; f32x4.max/min cost seven in V8 for
  ;; their NaN and ±0 rules, which do not matter here: a NaN is caught below, ±0 round alike).
  ;; Unsigned codes are computed as signed ones 128 lower (zp passed as zp − 128) and flipped back
  ;; by xor 0x80 ($flip), so one pair of narrows (never saturating after the clamp) serves both.
  ;; Loops are tested at the bottom (if … loop … br_if): V8's optimizing tier then keeps the splats
  ;; and constants in registers, where with the test at the top it re-made them every iteration
  ;; (13 of 45 instructions; the kernel ran 1.1× slower).
  ;; Returns 1 if any x may be NaN or ±Inf (a NaN in Σ 0·x; a huge finite x can overflow the sum
  ;; and say so too: the caller then takes the reference, which names, clamps or quantizes it).
  (func $q1 (param $x f32) (param $s f32) (param $lo f32) (param $hi f32) (param $zp i32) (param $flip i32) (result i32)
    (i32.xor
      (i32.add
        (i32.trunc_sat_f32_s
          (f32.nearest (f32.min (f32.max (f32.div (local.get $x) (local.get $s)) (local.get $lo)) (local.get $hi))))
        (local.get $zp))
      (local.get $flip)))

  ;; One scale and zero point for n floats at $src → n codes at $dst.
  (func (export "quantizeRun")
    (param $src i32) (param $dst i32) (param $n i32) (param $scale f32) (param $lo f32) (param $hi f32)
    (param $zp i32) (param $flip i32) (result i32)
    (local $end i32) (local $ok v128) (local $S v128) (local $LO v128) (local $HI v128) (local $ZP v128) (local $F v128)
    (local $bad i32) (local $x f32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128) (local $MAGIC v128)
    (local.set $S (f32x4.splat (local.get $scale)))
    (local.set $LO (f32x4.splat (local.get $lo)))
    (local.set $HI (f32x4.splat (local.get $hi)))
    (local.set $ZP (i32x4.splat (i32.sub (i32.const 0x4B400000) (local.get $zp))))
    (local.set $MAGIC (v128.const f32x4 0x1.8p23 0x1.8p23 0x1.8p23 0x1.8p23))
    (local.set $F (i8x16.splat (local.get $flip)))
    (local.set $ok (v128.const f32x4 0 0 0 0))
    (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -16)) (i32.const 2))))
    (if (i32.lt_u (local.get $src) (local.get $end))
      (then (loop $next
        (local.set $x0 (v128.load offset=0 (local.get $src)))
        (local.set $x1 (v128.load offset=16 (local.get $src)))
        (local.set $x2 (v128.load offset=32 (local.get $src)))
        (local.set $x3 (v128.load offset=48 (local.get $src)))
        (local.set $ok (f32x4.add (local.get $ok) (f32x4.mul (f32x4.add (f32x4.add (local.get $x0) (local.get $x1)) (f32x4.add (local.get $x2) (local.get $x3))) (v128.const f32x4 0 0 0 0))))
        (v128.store (local.get $dst)
          (v128.xor
            (i8x16.narrow_i16x8_s
              (i16x8.narrow_i32x4_s
                (i32x4.sub (f32x4.add (f32x4.pmin (f32x4.pmax (f32x4.div (local.get $x0) (local.get $S)) (local.get $LO)) (local.get $HI)) (local.get $MAGIC)) (local.get $ZP))
                (i32x4.sub (f32x4.add (f32x4.pmin (f32x4.pmax (f32x4.div (local.get $x1) (local.get $S)) (local.get $LO)) (local.get $HI)) (local.get $MAGIC)) (local.get $ZP)))
              (i16x8.narrow_i32x4_s
                (i32x4.sub (f32x4.add (f32x4.pmin (f32x4.pmax (f32x4.div (local.get $x2) (local.get $S)) (local.get $LO)) (local.get $HI)) (local.get $MAGIC)) (local.get $ZP))
                (i32x4.sub (f32x4.add (f32x4.pmin (f32x4.pmax (f32x4.div (local.get $x3) (local.get $S)) (local.get $LO)) (local.get $HI)) (local.get $MAGIC)) (local.get $ZP))))
            (local.get $F)))
        (local.set $src (i32.add (local.get $src) (i32.const 64)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br_if $next (i32.lt_u (local.get $src) (local.get $end))))))
    (local.set $bad (i32.eqz (i32x4.all_true (f32x4.eq (local.get $ok) (local.get $ok)))))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 15)) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $x (f32.load (local.get $src)))
        (local.set $bad (i32.or (local.get $bad) (i32.eqz (f32.lt (f32.abs (local.get $x)) (f32.const inf)))))
        (i32.store8 (local.get $dst)
          (call $q1 (local.get $x) (local.get $scale) (local.get $lo) (local.get $hi) (local.get $zp) (local.get $flip)))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (br $next)))
    (local.get $bad))

  ;; Per column: `rows` rows of C floats; column j uses four arrays of C entries at $p: scale
  ;; (f32) at $p, lo at $p + 4C, hi at $p + 8C, and (i32) 0x4B400000 − zp (zp shifted as above)
  ;; at $p + 12C.
  (func (export "quantizeColumns")
    (param $src i32) (param $dst i32) (param $rows i32) (param $c i32) (param $p i32) (param $flip i32) (result i32)
    (local $r i32) (local $j i32) (local $c16 i32) (local $pj i32) (local $ok v128) (local $F v128) (local $bad i32)
    (local $x f32) (local $c4 i32) (local $c8 i32) (local $c12 i32)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128) (local $MAGIC v128)
    (local.set $MAGIC (v128.const f32x4 0x1.8p23 0x1.8p23 0x1.8p23 0x1.8p23))
    (local.set $F (i8x16.splat (local.get $flip)))
    (local.set $ok (v128.const f32x4 0 0 0 0))
    (local.set $c16 (i32.and (local.get $c) (i32.const -16)))
    (local.set $c4 (i32.shl (local.get $c) (i32.const 2)))
    (local.set $c8 (i32.shl (local.get $c) (i32.const 3)))
    (local.set $c12 (i32.mul (local.get $c) (i32.const 12)))
    (block $rowsDone
      (loop $row
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (local.set $pj (local.get $p))
        (if (i32.lt_u (local.get $j) (local.get $c16))
          (then (loop $next
            (local.set $x0 (v128.load offset=0 (local.get $src)))
            (local.set $x1 (v128.load offset=16 (local.get $src)))
            (local.set $x2 (v128.load offset=32 (local.get $src)))
            (local.set $x3 (v128.load offset=48 (local.get $src)))
            (local.set $ok (f32x4.add (local.get $ok) (f32x4.mul (f32x4.add (f32x4.add (local.get $x0) (local.get $x1)) (f32x4.add (local.get $x2) (local.get $x3))) (v128.const f32x4 0 0 0 0))))
            (v128.store (local.get $dst)
              (v128.xor
                (i8x16.narrow_i16x8_s
                  (i16x8.narrow_i32x4_s
                    (i32x4.sub (f32x4.add (f32x4.pmin (f32x4.pmax (f32x4.div (local.get $x0) (v128.load offset=0 (local.get $pj))) (v128.load offset=0 (i32.add (local.get $pj) (local.get $c4)))) (v128.load offset=0 (i32.add (local.get $pj) (local.get $c8)))) (local.get $MAGIC)) (v128.load offset=0 (i32.add (local.get $pj) (local.get $c12))))
                    (i32x4.sub (f32x4.add (f32x4.pmin (f32x4.pmax (f32x4.div (local.get $x1) (v128.load offset=16 (local.get $pj))) (v128.load offset=16 (i32.add (local.get $pj) (local.get $c4)))) (v128.load offset=16 (i32.add (local.get $pj) (local.get $c8)))) (local.get $MAGIC)) (v128.load offset=16 (i32.add (local.get $pj) (local.get $c12)))))
                  (i16x8.narrow_i32x4_s
                    (i32x4.sub (f32x4.add (f32x4.pmin (f32x4.pmax (f32x4.div (local.get $x2) (v128.load offset=32 (local.get $pj))) (v128.load offset=32 (i32.add (local.get $pj) (local.get $c4)))) (v128.load offset=32 (i32.add (local.get $pj) (local.get $c8)))) (local.get $MAGIC)) (v128.load offset=32 (i32.add (local.get $pj) (local.get $c12))))
                    (i32x4.sub (f32x4.add (f32x4.pmin (f32x4.pmax (f32x4.div (local.get $x3) (v128.load offset=48 (local.get $pj))) (v128.load offset=48 (i32.add (local.get $pj) (local.get $c4)))) (v128.load offset=48 (i32.add (local.get $pj) (local.get $c8)))) (local.get $MAGIC)) (v128.load offset=48 (i32.add (local.get $pj) (local.get $c12))))))
                (local.get $F)))
            (local.set $src (i32.add (local.get $src) (i32.const 64)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
            (local.set $pj (i32.add (local.get $pj) (i32.const 64)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br_if $next (i32.lt_u (local.get $j) (local.get $c16))))))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $j) (local.get $c)))
            (local.set $x (f32.load (local.get $src)))
            (local.set $bad (i32.or (local.get $bad) (i32.eqz (f32.lt (f32.abs (local.get $x)) (f32.const inf)))))
            (i32.store8 (local.get $dst)
              (call $q1 (local.get $x) (f32.load (local.get $pj))
                (f32.load (i32.add (local.get $pj) (local.get $c4)))
                (f32.load (i32.add (local.get $pj) (i32.shl (local.get $c4) (i32.const 1))))
                (i32.sub (i32.const 0x4B400000) (i32.load (i32.add (local.get $pj) (local.get $c12))))
                (local.get $flip)))
            (local.set $src (i32.add (local.get $src) (i32.const 4)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
            (local.set $pj (i32.add (local.get $pj) (i32.const 4)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $next)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row)))
    (i32.or (local.get $bad) (i32.eqz (i32x4.all_true (f32x4.eq (local.get $ok) (local.get $ok))))))

  ;; DequantizeLinear of n codes with one scale: fround((q − zp) · s); codes flipped by $flip to
  ;; signed first (uint8: q − 128, zp passed as zp − 128), so q − zp is exact in any case.
  (func (export "dequantizeRun")
    (param $src i32) (param $dst i32) (param $n i32) (param $scale f32) (param $zp i32) (param $flip i32)
    (local $end i32) (local $S v128) (local $ZP v128) (local $F v128) (local $v v128) (local $l v128) (local $h v128)
    (local.set $S (f32x4.splat (local.get $scale)))
    (local.set $ZP (i32x4.splat (local.get $zp)))
    (local.set $F (i8x16.splat (local.get $flip)))
    (local.set $end (i32.add (local.get $src) (i32.and (local.get $n) (i32.const -16))))
    (if (i32.lt_u (local.get $src) (local.get $end))
      (then (loop $next
        (local.set $v (v128.xor (v128.load (local.get $src)) (local.get $F)))
        (local.set $l (i16x8.extend_low_i8x16_s (local.get $v)))
        (local.set $h (i16x8.extend_high_i8x16_s (local.get $v)))
        (v128.store (local.get $dst)
          (f32x4.mul (f32x4.convert_i32x4_s (i32x4.sub (i32x4.extend_low_i16x8_s (local.get $l)) (local.get $ZP))) (local.get $S)))
        (v128.store offset=16 (local.get $dst)
          (f32x4.mul (f32x4.convert_i32x4_s (i32x4.sub (i32x4.extend_high_i16x8_s (local.get $l)) (local.get $ZP))) (local.get $S)))
        (v128.store offset=32 (local.get $dst)
          (f32x4.mul (f32x4.convert_i32x4_s (i32x4.sub (i32x4.extend_low_i16x8_s (local.get $h)) (local.get $ZP))) (local.get $S)))
        (v128.store offset=48 (local.get $dst)
          (f32x4.mul (f32x4.convert_i32x4_s (i32x4.sub (i32x4.extend_high_i16x8_s (local.get $h)) (local.get $ZP))) (local.get $S)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
        (br_if $next (i32.lt_u (local.get $src) (local.get $end))))))
    (local.set $end (i32.add (local.get $end) (i32.and (local.get $n) (i32.const 15))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (f32.store (local.get $dst)
          (f32.mul
            (f32.convert_i32_s (i32.sub (i32.extend8_s (i32.xor (i32.load8_u (local.get $src)) (local.get $flip))) (local.get $zp)))
            (local.get $scale)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (br $next))))

  ;; ---------------------------------------------------------------------------------------------
  ;; int8 GEMM, raw sums: C[i, 4p + c] = Σ_k A[i, k]·B[k, 4p + c] over int8 codes (uint8 operands
  ;; arrive flipped to int8 by the driver, the 128 folded into their zero points; the zero points
  ;; never enter this loop). A: rows of K16 bytes (K rounded up to 16, zero padded), at $a with
  ;; row stride K16. B: panels of 4 columns, [N4/4][K16/16][4][16] bytes, zero padded. C: int32
  ;; [M][N4] (row stride N4·4 bytes), written, not added to. Codes are widened to int16 as they
  ;; load (v128.load8x8_s: one instruction, where extend_high takes two) and summed in pairs by
  ;; i32x4.dot_i16x8_s: exact, the int32 lanes
  ;; wrap modulo 2^32 as the reference's Int32Array store does. Rows go two at a time against a
  ;; panel (a 2×4 tile: 8 accumulators), the panel (4·K16 bytes) staying in L1 across the rows.

  ;; The four accumulators' lane sums as one vector [Σacc0, Σacc1, Σacc2, Σacc3].
  (func $hsum4 (param $a v128) (param $b v128) (param $c v128) (param $d v128) (result v128)
    (local $ab v128) (local $cd v128)
    (local.set $ab (i32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $a) (local.get $b))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $a) (local.get $b))))
    (local.set $cd (i32x4.add
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $c) (local.get $d))
      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $c) (local.get $d))))
    (i32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $ab) (local.get $cd))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $ab) (local.get $cd))))

  (func (export "gemmS8")
    (param $a i32) (param $b i32) (param $c i32) (param $m i32) (param $k16 i32) (param $n4 i32)
    (local $p i32) (local $i i32) (local $pb i32) (local $pa0 i32) (local $pa1 i32) (local $end i32) (local $ldc i32)
    (local $a0l v128) (local $a0h v128) (local $a1l v128) (local $a1h v128) (local $bl v128) (local $bh v128)
    (local $c00 v128) (local $c01 v128) (local $c02 v128) (local $c03 v128)
    (local $c10 v128) (local $c11 v128) (local $c12 v128) (local $c13 v128)
    (local $panel i32) (local $out i32)
    (local.set $ldc (i32.shl (local.get $n4) (i32.const 2)))
    (local.set $panel (i32.shl (local.get $k16) (i32.const 2)))
    (block $panelsDone
      (loop $panelLoop
        (br_if $panelsDone (i32.ge_u (local.get $p) (local.get $n4)))
        (local.set $i (i32.const 0))
        (block $rowsDone
          (loop $rowLoop
            (br_if $rowsDone (i32.gt_u (i32.add (local.get $i) (i32.const 2)) (local.get $m)))
            (local.set $pa0 (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $k16))))
            (local.set $pa1 (i32.add (local.get $pa0) (local.get $k16)))
            (local.set $end (i32.add (local.get $pa0) (local.get $k16)))
            (local.set $pb (i32.add (local.get $b) (i32.mul (i32.shr_u (local.get $p) (i32.const 2)) (local.get $panel))))
            (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0)) (local.set $c02 (v128.const i32x4 0 0 0 0)) (local.set $c03 (v128.const i32x4 0 0 0 0))
            (local.set $c10 (v128.const i32x4 0 0 0 0)) (local.set $c11 (v128.const i32x4 0 0 0 0)) (local.set $c12 (v128.const i32x4 0 0 0 0)) (local.set $c13 (v128.const i32x4 0 0 0 0))
            (block $kDone
              (loop $kLoop
                (br_if $kDone (i32.ge_u (local.get $pa0) (local.get $end)))
                (local.set $a0l (v128.load8x8_s (local.get $pa0)))
                (local.set $a0h (v128.load8x8_s offset=8 (local.get $pa0)))
                (local.set $a1l (v128.load8x8_s (local.get $pa1)))
                (local.set $a1h (v128.load8x8_s offset=8 (local.get $pa1)))
                (local.set $bl (v128.load8x8_s offset=0 (local.get $pb)))
                (local.set $bh (v128.load8x8_s offset=8 (local.get $pb)))
                (local.set $c00 (i32x4.add (local.get $c00) (i32x4.add (i32x4.dot_i16x8_s (local.get $a0l) (local.get $bl)) (i32x4.dot_i16x8_s (local.get $a0h) (local.get $bh)))))
                (local.set $c10 (i32x4.add (local.get $c10) (i32x4.add (i32x4.dot_i16x8_s (local.get $a1l) (local.get $bl)) (i32x4.dot_i16x8_s (local.get $a1h) (local.get $bh)))))
                (local.set $bl (v128.load8x8_s offset=16 (local.get $pb)))
                (local.set $bh (v128.load8x8_s offset=24 (local.get $pb)))
                (local.set $c01 (i32x4.add (local.get $c01) (i32x4.add (i32x4.dot_i16x8_s (local.get $a0l) (local.get $bl)) (i32x4.dot_i16x8_s (local.get $a0h) (local.get $bh)))))
                (local.set $c11 (i32x4.add (local.get $c11) (i32x4.add (i32x4.dot_i16x8_s (local.get $a1l) (local.get $bl)) (i32x4.dot_i16x8_s (local.get $a1h) (local.get $bh)))))
                (local.set $bl (v128.load8x8_s offset=32 (local.get $pb)))
                (local.set $bh (v128.load8x8_s offset=40 (local.get $pb)))
                (local.set $c02 (i32x4.add (local.get $c02) (i32x4.add (i32x4.dot_i16x8_s (local.get $a0l) (local.get $bl)) (i32x4.dot_i16x8_s (local.get $a0h) (local.get $bh)))))
                (local.set $c12 (i32x4.add (local.get $c12) (i32x4.add (i32x4.dot_i16x8_s (local.get $a1l) (local.get $bl)) (i32x4.dot_i16x8_s (local.get $a1h) (local.get $bh)))))
                (local.set $bl (v128.load8x8_s offset=48 (local.get $pb)))
                (local.set $bh (v128.load8x8_s offset=56 (local.get $pb)))
                (local.set $c03 (i32x4.add (local.get $c03) (i32x4.add (i32x4.dot_i16x8_s (local.get $a0l) (local.get $bl)) (i32x4.dot_i16x8_s (local.get $a0h) (local.get $bh)))))
                (local.set $c13 (i32x4.add (local.get $c13) (i32x4.add (i32x4.dot_i16x8_s (local.get $a1l) (local.get $bl)) (i32x4.dot_i16x8_s (local.get $a1h) (local.get $bh)))))
                (local.set $pa0 (i32.add (local.get $pa0) (i32.const 16)))
                (local.set $pa1 (i32.add (local.get $pa1) (i32.const 16)))
                (local.set $pb (i32.add (local.get $pb) (i32.const 64)))
                (br $kLoop)))
            (local.set $out (i32.add (local.get $c)
              (i32.add (i32.mul (local.get $i) (local.get $ldc)) (i32.shl (local.get $p) (i32.const 2)))))
            (v128.store (local.get $out) (call $hsum4 (local.get $c00) (local.get $c01) (local.get $c02) (local.get $c03)))
            (v128.store (i32.add (local.get $out) (local.get $ldc))
              (call $hsum4 (local.get $c10) (local.get $c11) (local.get $c12) (local.get $c13)))
            (local.set $i (i32.add (local.get $i) (i32.const 2)))
            (br $rowLoop)))
        ;; The last row when M is odd (and M = 1): a 1×4 tile.
        (if (i32.lt_u (local.get $i) (local.get $m))
          (then
            (local.set $pa0 (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $k16))))
            (local.set $end (i32.add (local.get $pa0) (local.get $k16)))
            (local.set $pb (i32.add (local.get $b) (i32.mul (i32.shr_u (local.get $p) (i32.const 2)) (local.get $panel))))
            (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0)) (local.set $c02 (v128.const i32x4 0 0 0 0)) (local.set $c03 (v128.const i32x4 0 0 0 0))
            (block $kDone
              (loop $kLoop
                (br_if $kDone (i32.ge_u (local.get $pa0) (local.get $end)))
                (local.set $a0l (v128.load8x8_s (local.get $pa0)))
                (local.set $a0h (v128.load8x8_s offset=8 (local.get $pa0)))
                (local.set $c00 (i32x4.add (local.get $c00) (i32x4.add
                  (i32x4.dot_i16x8_s (local.get $a0l) (v128.load8x8_s offset=0 (local.get $pb)))
                  (i32x4.dot_i16x8_s (local.get $a0h) (v128.load8x8_s offset=8 (local.get $pb))))))
                (local.set $c01 (i32x4.add (local.get $c01) (i32x4.add
                  (i32x4.dot_i16x8_s (local.get $a0l) (v128.load8x8_s offset=16 (local.get $pb)))
                  (i32x4.dot_i16x8_s (local.get $a0h) (v128.load8x8_s offset=24 (local.get $pb))))))
                (local.set $c02 (i32x4.add (local.get $c02) (i32x4.add
                  (i32x4.dot_i16x8_s (local.get $a0l) (v128.load8x8_s offset=32 (local.get $pb)))
                  (i32x4.dot_i16x8_s (local.get $a0h) (v128.load8x8_s offset=40 (local.get $pb))))))
                (local.set $c03 (i32x4.add (local.get $c03) (i32x4.add
                  (i32x4.dot_i16x8_s (local.get $a0l) (v128.load8x8_s offset=48 (local.get $pb)))
                  (i32x4.dot_i16x8_s (local.get $a0h) (v128.load8x8_s offset=56 (local.get $pb))))))
                (local.set $pa0 (i32.add (local.get $pa0) (i32.const 16)))
                (local.set $pb (i32.add (local.get $pb) (i32.const 64)))
                (br $kLoop)))
            (v128.store
              (i32.add (local.get $c) (i32.add (i32.mul (local.get $i) (local.get $ldc)) (i32.shl (local.get $p) (i32.const 2))))
              (call $hsum4 (local.get $c00) (local.get $c01) (local.get $c02) (local.get $c03)))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $panelLoop))))

  ;; The same raw sums for M ≥ 4, in the broadcast form, over one block of K and of columns. A is
  ;; int16 in tiles of 4 rows ([pairs][4 rows][2], tile t at $a + t·$aStride; rows past M zero),
  ;; each row's pair splatted to all four lanes (v128.load32_splat) and dotted with B pre-widened
  ;; to int16 in panels of 8 columns, [pairs][8 columns][2] (panel p at $b + p·$bStride), so each
  ;; dot yields four columns' partial sums directly, no horizontal sum. A 4 × 8 tile keeps 8
  ;; accumulators (15 vector registers are what V8 gives; unrolling by two makes it spill); one
  ;; pointer walks each operand, so the loop holds no address arithmetic beyond two adds. The driver cuts K and the columns into blocks (a tile's A in L1,
  ;; the block's panels in L2); C (int32, row stride $ldc bytes) is written by the first K block
  ;; and added to by the next ($add).
  (func (export "gemmS8Wide")
    (param $a i32) (param $aStride i32) (param $b i32) (param $bStride i32) (param $c i32) (param $ldc i32)
    (param $m i32) (param $pairs i32) (param $cols i32) (param $add i32)
    (local $p i32) (local $i i32) (local $pb i32) (local $pa i32) (local $end i32) (local $tile i32) (local $out i32)
    (local $av v128) (local $b0 v128) (local $b1 v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local.set $tile (local.get $a))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $i) (local.get $m)))
        (local.set $p (i32.const 0))
        (block $panelsDone
          (loop $panelLoop
            (br_if $panelsDone (i32.ge_u (local.get $p) (local.get $cols)))
            (local.set $pb (i32.add (local.get $b) (i32.mul (i32.shr_u (local.get $p) (i32.const 3)) (local.get $bStride))))
            (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0))
            (local.set $c10 (v128.const i32x4 0 0 0 0)) (local.set $c11 (v128.const i32x4 0 0 0 0))
            (local.set $c20 (v128.const i32x4 0 0 0 0)) (local.set $c21 (v128.const i32x4 0 0 0 0))
            (local.set $c30 (v128.const i32x4 0 0 0 0)) (local.set $c31 (v128.const i32x4 0 0 0 0))
            (local.set $pa (local.get $tile))
            (local.set $end (i32.add (local.get $tile) (i32.shl (local.get $pairs) (i32.const 4))))
            (block $kDone
              (loop $kLoop
                (br_if $kDone (i32.ge_u (local.get $pa) (local.get $end)))
                (local.set $b0 (v128.load (local.get $pb)))
                (local.set $b1 (v128.load offset=16 (local.get $pb)))
                (local.set $av (v128.load32_splat (local.get $pa)))
                (local.set $c00 (i32x4.add (local.get $c00) (i32x4.dot_i16x8_s (local.get $av) (local.get $b0))))
                (local.set $c01 (i32x4.add (local.get $c01) (i32x4.dot_i16x8_s (local.get $av) (local.get $b1))))
                (local.set $av (v128.load32_splat offset=4 (local.get $pa)))
                (local.set $c10 (i32x4.add (local.get $c10) (i32x4.dot_i16x8_s (local.get $av) (local.get $b0))))
                (local.set $c11 (i32x4.add (local.get $c11) (i32x4.dot_i16x8_s (local.get $av) (local.get $b1))))
                (local.set $av (v128.load32_splat offset=8 (local.get $pa)))
                (local.set $c20 (i32x4.add (local.get $c20) (i32x4.dot_i16x8_s (local.get $av) (local.get $b0))))
                (local.set $c21 (i32x4.add (local.get $c21) (i32x4.dot_i16x8_s (local.get $av) (local.get $b1))))
                (local.set $av (v128.load32_splat offset=12 (local.get $pa)))
                (local.set $c30 (i32x4.add (local.get $c30) (i32x4.dot_i16x8_s (local.get $av) (local.get $b0))))
                (local.set $c31 (i32x4.add (local.get $c31) (i32x4.dot_i16x8_s (local.get $av) (local.get $b1))))
                (local.set $pa (i32.add (local.get $pa) (i32.const 16)))
                (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
                (br $kLoop)))
            (local.set $out (i32.add (local.get $c)
              (i32.add (i32.mul (local.get $i) (local.get $ldc)) (i32.shl (local.get $p) (i32.const 2)))))
            (if (i32.lt_u (i32.add (local.get $i) (i32.const 0)) (local.get $m))
              (then
                (if (local.get $add)
                  (then
                    (local.set $c00 (i32x4.add (local.get $c00) (v128.load (local.get $out))))
                    (local.set $c01 (i32x4.add (local.get $c01) (v128.load offset=16 (local.get $out))))))
                (v128.store (local.get $out) (local.get $c00))
                (v128.store offset=16 (local.get $out) (local.get $c01))))
            (local.set $out (i32.add (local.get $out) (local.get $ldc)))
            (if (i32.lt_u (i32.add (local.get $i) (i32.const 1)) (local.get $m))
              (then
                (if (local.get $add)
                  (then
                    (local.set $c10 (i32x4.add (local.get $c10) (v128.load (local.get $out))))
                    (local.set $c11 (i32x4.add (local.get $c11) (v128.load offset=16 (local.get $out))))))
                (v128.store (local.get $out) (local.get $c10))
                (v128.store offset=16 (local.get $out) (local.get $c11))))
            (local.set $out (i32.add (local.get $out) (local.get $ldc)))
            (if (i32.lt_u (i32.add (local.get $i) (i32.const 2)) (local.get $m))
              (then
                (if (local.get $add)
                  (then
                    (local.set $c20 (i32x4.add (local.get $c20) (v128.load (local.get $out))))
                    (local.set $c21 (i32x4.add (local.get $c21) (v128.load offset=16 (local.get $out))))))
                (v128.store (local.get $out) (local.get $c20))
                (v128.store offset=16 (local.get $out) (local.get $c21))))
            (local.set $out (i32.add (local.get $out) (local.get $ldc)))
            (if (i32.lt_u (i32.add (local.get $i) (i32.const 3)) (local.get $m))
              (then
                (if (local.get $add)
                  (then
                    (local.set $c30 (i32x4.add (local.get $c30) (v128.load (local.get $out))))
                    (local.set $c31 (i32x4.add (local.get $c31) (v128.load offset=16 (local.get $out))))))
                (v128.store (local.get $out) (local.get $c30))
                (v128.store offset=16 (local.get $out) (local.get $c31))))
            (local.set $out (i32.add (local.get $out) (local.get $ldc)))
            (local.set $p (i32.add (local.get $p) (i32.const 8)))
            (br $panelLoop)))
        (local.set $tile (i32.add (local.get $tile) (local.get $aStride)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $rowLoop))))

  ;; A for the wide kernel: m rows of k raw bytes at $src (flipped to int8 by xor $flip) into
  ;; int16 4-row tiles at $dst ([⌈m/4⌉][k2][4][2], already zeroed: the padding stays 0), and each
  ;; row's sum of int8 codes into $sums (int32 [m]).
  (func (export "packAWide")
    (param $src i32) (param $dst i32) (param $sums i32) (param $m i32) (param $k i32) (param $k2 i32) (param $flip i32)
    (local $i i32) (local $t i32) (local $row i32) (local $base i32) (local $p i32) (local $k8 i32) (local $sum i32)
    (local $F v128) (local $v v128) (local $sv v128)
    (local.set $F (i8x16.splat (local.get $flip)))
    (local.set $k8 (i32.and (local.get $k) (i32.const -8)))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $i) (local.get $m)))
        (local.set $row (i32.add (local.get $src) (i32.mul (local.get $i) (local.get $k))))
        (local.set $base (i32.add (local.get $dst)
          (i32.add (i32.mul (i32.shr_u (local.get $i) (i32.const 2)) (i32.shl (local.get $k2) (i32.const 4)))
            (i32.shl (i32.and (local.get $i) (i32.const 3)) (i32.const 2)))))
        (local.set $sv (v128.const i32x4 0 0 0 0))
        (local.set $t (i32.const 0))
        (local.set $p (local.get $base))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $t) (local.get $k8)))
            (local.set $v (i16x8.extend_low_i8x16_s
              (v128.xor (v128.load64_zero (i32.add (local.get $row) (local.get $t))) (local.get $F))))
            (local.set $sv (i32x4.add (local.get $sv) (i32x4.extadd_pairwise_i16x8_s (local.get $v))))
            (v128.store32_lane 0 (local.get $p) (local.get $v))
            (v128.store32_lane offset=16 1 (local.get $p) (local.get $v))
            (v128.store32_lane offset=32 2 (local.get $p) (local.get $v))
            (v128.store32_lane offset=48 3 (local.get $p) (local.get $v))
            (local.set $p (i32.add (local.get $p) (i32.const 64)))
            (local.set $t (i32.add (local.get $t) (i32.const 8)))
            (br $next)))
        (local.set $sum (i32.add
          (i32.add (i32x4.extract_lane 0 (local.get $sv)) (i32x4.extract_lane 1 (local.get $sv)))
          (i32.add (i32x4.extract_lane 2 (local.get $sv)) (i32x4.extract_lane 3 (local.get $sv)))))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $t) (local.get $k)))
            (local.set $p (i32.extend8_s (i32.xor (i32.load8_u (i32.add (local.get $row) (local.get $t))) (local.get $flip))))
            (local.set $sum (i32.add (local.get $sum) (local.get $p)))
            (i32.store16
              (i32.add (local.get $base)
                (i32.add (i32.shl (i32.shr_u (local.get $t) (i32.const 1)) (i32.const 4)) (i32.shl (i32.and (local.get $t) (i32.const 1)) (i32.const 1))))
              (local.get $p))
            (local.set $t (i32.add (local.get $t) (i32.const 1)))
            (br $next)))
        (i32.store (i32.add (local.get $sums) (i32.shl (local.get $i) (i32.const 2))) (local.get $sum))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rowLoop))))

  ;; The zero-point fix-up, in place: row i of the raw sums ($c, stride $ldc int32) becomes
  ;; C[i, j] = raw − zero[j]·rowSum[i] + colTerm[j] (int32, wrapping), rows packed to stride n.
  ;; Writes never pass the reads (i·n + j ≤ i·ldc + j), so one buffer serves.
  (func (export "fixUp")
    (param $c i32) (param $ldc i32) (param $m i32) (param $n i32) (param $rowSums i32) (param $zero i32) (param $colTerm i32)
    (local $i i32) (local $j i32) (local $src i32) (local $dst i32) (local $rs i32) (local $RS v128) (local $n4 i32)
    (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $i) (local.get $m)))
        (local.set $src (i32.add (local.get $c) (i32.shl (i32.mul (local.get $i) (local.get $ldc)) (i32.const 2))))
        (local.set $dst (i32.add (local.get $c) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 2))))
        (local.set $rs (i32.load (i32.add (local.get $rowSums) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $RS (i32x4.splat (local.get $rs)))
        (local.set $j (i32.const 0))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $j) (local.get $n4)))
            (v128.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
              (i32x4.add
                (i32x4.sub (v128.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2))))
                  (i32x4.mul (v128.load (i32.add (local.get $zero) (i32.shl (local.get $j) (i32.const 2)))) (local.get $RS)))
                (v128.load (i32.add (local.get $colTerm) (i32.shl (local.get $j) (i32.const 2))))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $next)))
        (block $done
          (loop $next
            (br_if $done (i32.ge_u (local.get $j) (local.get $n)))
            (i32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
              (i32.add
                (i32.sub (i32.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2))))
                  (i32.mul (i32.load (i32.add (local.get $zero) (i32.shl (local.get $j) (i32.const 2)))) (local.get $rs)))
                (i32.load (i32.add (local.get $colTerm) (i32.shl (local.get $j) (i32.const 2))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $next)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rowLoop))))

  ;; ---------------------------------------------------------------------------------------------
  ;; 4-bit GEMV, the order gemv-4bit.ref.ts fixes: per output n, per block b (`steps` steps of 32
  ;; elements = 16 bytes), the 32 products x·w in 8 vectors (which elements each holds is the
  ;; kernel's: gemv-4bit.ref.ts names them per kernel) are summed ((P0+P1)+(P2+P3))+((P4+P5)+(P6+P7)) into the block's lanes; the block's lanes
  ;; times its scale go into four running totals; y[n] = (T0+T1)+(T2+T3). x arrives permuted into
  ;; that vector order (32 floats a step), so every x load is one v128.load.

  (func $hsumF (param $t v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $t)) (f32x4.extract_lane 1 (local.get $t)))
      (f32.add (f32x4.extract_lane 2 (local.get $t)) (f32x4.extract_lane 3 (local.get $t)))))

  ;; MatMulNBits: codes at $w ([N][kBlocks][blockSize/2], low nibble = even element), scales at $s
  ;; ([N][kBlocks] f32), zero points unpacked at $z ([N][kBlocks] bytes), x permuted at $x, y at $y.
  (func (export "gemvNBits")
    (param $x i32) (param $w i32) (param $s i32) (param $z i32) (param $y i32) (param $n i32) (param $kBlocks i32) (param $steps i32)
    (local $j i32) (local $b i32) (local $t v128) (local $acc v128) (local $v v128) (local $xp i32) (local $st i32)
    (local $w0 v128) (local $w4 v128) (local $M4 v128) (local $MAGIC v128) (local $zf v128)
    (local $w2 i32) (local $row i32) (local $acc2 v128) (local $t2 v128) (local $zf2 v128)
    (local.set $M4 (v128.const i32x4 15 15 15 15))
    (local.set $MAGIC (v128.const i32x4 0x4B000000 0x4B000000 0x4B000000 0x4B000000))
    (local.set $row (i32.mul (i32.mul (local.get $kBlocks) (local.get $steps)) (i32.const 16)))
    ;; Two rows a pass, a step of one then the same step of the other: two weight streams in
    ;; flight (the weight comes from main memory when the model is larger than the cache), each
    ;; row's sums in the one-row order.
    (block $pairsDone
      (loop $pairLoop
        (br_if $pairsDone (i32.gt_u (i32.add (local.get $j) (i32.const 2)) (local.get $n)))
        (local.set $t (v128.const f32x4 0 0 0 0))
        (local.set $t2 (v128.const f32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $w2 (i32.add (local.get $w) (local.get $row)))
        (local.set $b (i32.const 0))
        (block $bDone
          (loop $bLoop
            (br_if $bDone (i32.ge_u (local.get $b) (local.get $kBlocks)))
            (local.set $zf (i32x4.splat (i32.add (i32.const 0x4B000000) (i32.load8_u (local.get $z)))))
            (local.set $zf2 (i32x4.splat (i32.add (i32.const 0x4B000000) (i32.load8_u (i32.add (local.get $z) (local.get $kBlocks))))))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $acc2 (v128.const f32x4 0 0 0 0))
            (local.set $st (local.get $steps))
            (loop $sLoop
              (local.set $v (v128.load (local.get $w)))
              ;; Element 8j + r of the step is nibble r of int32 lane j: (v >> 4r) & 15, made a float
              ;; exactly by or-ing it into the mantissa of 2^23 and subtracting 2^23 + zero point.
              ;; Shifts, ands and ors only: no byte shuffles, which share one port on x86.
              (local.set $w0
                (f32x4.add
                  (f32x4.add
                    (f32x4.mul (v128.load (local.get $xp)) (f32x4.sub (v128.or (v128.and (local.get $v) (local.get $M4)) (local.get $MAGIC)) (local.get $zf)))
                    (f32x4.mul (v128.load offset=16 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 4)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf))))
                  (f32x4.add
                    (f32x4.mul (v128.load offset=32 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 8)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf)))
                    (f32x4.mul (v128.load offset=48 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 12)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf))))))
              (local.set $w4
                (f32x4.add
                  (f32x4.add
                    (f32x4.mul (v128.load offset=64 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 16)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf)))
                    (f32x4.mul (v128.load offset=80 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 20)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf))))
                  (f32x4.add
                    (f32x4.mul (v128.load offset=96 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 24)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf)))
                    (f32x4.mul (v128.load offset=112 (local.get $xp)) (f32x4.sub (v128.or (i32x4.shr_u (local.get $v) (i32.const 28)) (local.get $MAGIC)) (local.get $zf))))))
              (local.set $acc (f32x4.add (local.get $acc) (f32x4.add (local.get $w0) (local.get $w4))))
              (local.set $v (v128.load (local.get $w2)))
              ;; Element 8j + r of the step is nibble r of int32 lane j: (v >> 4r) & 15, made a float
              ;; exactly by or-ing it into the mantissa of 2^23 and subtracting 2^23 + zero point.
              ;; Shifts, ands and ors only: no byte shuffles, which share one port on x86.
              (local.set $w0
                (f32x4.add
                  (f32x4.add
                    (f32x4.mul (v128.load (local.get $xp)) (f32x4.sub (v128.or (v128.and (local.get $v) (local.get $M4)) (local.get $MAGIC)) (local.get $zf2)))
                    (f32x4.mul (v128.load offset=16 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 4)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf2))))
                  (f32x4.add
                    (f32x4.mul (v128.load offset=32 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 8)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf2)))
                    (f32x4.mul (v128.load offset=48 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 12)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf2))))))
              (local.set $w4
                (f32x4.add
                  (f32x4.add
                    (f32x4.mul (v128.load offset=64 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 16)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf2)))
                    (f32x4.mul (v128.load offset=80 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 20)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf2))))
                  (f32x4.add
                    (f32x4.mul (v128.load offset=96 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 24)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf2)))
                    (f32x4.mul (v128.load offset=112 (local.get $xp)) (f32x4.sub (v128.or (i32x4.shr_u (local.get $v) (i32.const 28)) (local.get $MAGIC)) (local.get $zf2))))))
              (local.set $acc2 (f32x4.add (local.get $acc2) (f32x4.add (local.get $w0) (local.get $w4))))
              (local.set $w (i32.add (local.get $w) (i32.const 16)))
              (local.set $w2 (i32.add (local.get $w2) (i32.const 16)))
              (local.set $xp (i32.add (local.get $xp) (i32.const 128)))
              (local.set $st (i32.sub (local.get $st) (i32.const 1)))
              (br_if $sLoop (local.get $st)))
            (local.set $t (f32x4.add (local.get $t) (f32x4.mul (local.get $acc) (f32x4.splat (f32.load (local.get $s))))))
            (local.set $t2 (f32x4.add (local.get $t2) (f32x4.mul (local.get $acc2) (f32x4.splat (f32.load (i32.add (local.get $s) (i32.shl (local.get $kBlocks) (i32.const 2))))))))
            (local.set $s (i32.add (local.get $s) (i32.const 4)))
            (local.set $z (i32.add (local.get $z) (i32.const 1)))
            (local.set $b (i32.add (local.get $b) (i32.const 1)))
            (br $bLoop)))
        (f32.store (local.get $y) (call $hsumF (local.get $t)))
        (f32.store offset=4 (local.get $y) (call $hsumF (local.get $t2)))
        (local.set $w (local.get $w2))
        (local.set $s (i32.add (local.get $s) (i32.shl (local.get $kBlocks) (i32.const 2))))
        (local.set $z (i32.add (local.get $z) (local.get $kBlocks)))
        (local.set $y (i32.add (local.get $y) (i32.const 8)))
        (local.set $j (i32.add (local.get $j) (i32.const 2)))
        (br $pairLoop)))
    (block $nDone
      (loop $nLoop
        (br_if $nDone (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $t (v128.const f32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $b (i32.const 0))
        (block $bDone
          (loop $bLoop
            (br_if $bDone (i32.ge_u (local.get $b) (local.get $kBlocks)))
            (local.set $zf (i32x4.splat (i32.add (i32.const 0x4B000000) (i32.load8_u (local.get $z)))))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $st (local.get $steps))
            (loop $sLoop
              (local.set $v (v128.load (local.get $w)))
              ;; Element 8j + r of the step is nibble r of int32 lane j: (v >> 4r) & 15, made a float
              ;; exactly by or-ing it into the mantissa of 2^23 and subtracting 2^23 + zero point.
              ;; Shifts, ands and ors only: no byte shuffles, which share one port on x86.
              (local.set $w0
                (f32x4.add
                  (f32x4.add
                    (f32x4.mul (v128.load (local.get $xp)) (f32x4.sub (v128.or (v128.and (local.get $v) (local.get $M4)) (local.get $MAGIC)) (local.get $zf)))
                    (f32x4.mul (v128.load offset=16 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 4)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf))))
                  (f32x4.add
                    (f32x4.mul (v128.load offset=32 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 8)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf)))
                    (f32x4.mul (v128.load offset=48 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 12)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf))))))
              (local.set $w4
                (f32x4.add
                  (f32x4.add
                    (f32x4.mul (v128.load offset=64 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 16)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf)))
                    (f32x4.mul (v128.load offset=80 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 20)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf))))
                  (f32x4.add
                    (f32x4.mul (v128.load offset=96 (local.get $xp)) (f32x4.sub (v128.or (v128.and (i32x4.shr_u (local.get $v) (i32.const 24)) (local.get $M4)) (local.get $MAGIC)) (local.get $zf)))
                    (f32x4.mul (v128.load offset=112 (local.get $xp)) (f32x4.sub (v128.or (i32x4.shr_u (local.get $v) (i32.const 28)) (local.get $MAGIC)) (local.get $zf))))))
              (local.set $acc (f32x4.add (local.get $acc) (f32x4.add (local.get $w0) (local.get $w4))))
              (local.set $w (i32.add (local.get $w) (i32.const 16)))
              (local.set $xp (i32.add (local.get $xp) (i32.const 128)))
              (local.set $st (i32.sub (local.get $st) (i32.const 1)))
              (br_if $sLoop (local.get $st)))
            (local.set $t (f32x4.add (local.get $t) (f32x4.mul (local.get $acc) (f32x4.splat (f32.load (local.get $s))))))
            (local.set $s (i32.add (local.get $s) (i32.const 4)))
            (local.set $z (i32.add (local.get $z) (i32.const 1)))
            (local.set $b (i32.add (local.get $b) (i32.const 1)))
            (br $bLoop)))
        (f32.store (local.get $y) (call $hsumF (local.get $t)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $nLoop))))

  ;; The same for a weight without zero points (each code − 8), its bytes stored xor 0x88 by the
  ;; driver so every nibble is the signed 4-bit value code − 8; $z is not read.
  (func (export "gemvNBitsSym")
    (param $x i32) (param $w i32) (param $s i32) (param $z i32) (param $y i32) (param $n i32) (param $kBlocks i32) (param $steps i32)
    (local $j i32) (local $b i32) (local $t v128) (local $acc v128) (local $v v128) (local $xp i32) (local $st i32)
    (local $w0 v128) (local $w4 v128)
    (local $u v128) (local $acc2 v128) (local $t2 v128) (local $xa v128) (local $xb v128)
    (local $p0 v128) (local $q0 v128) (local $p4 v128) (local $q4 v128) (local $row i32) (local $rowS i32)
    ;; Two rows a pass: each x load serves both, and the loop's upkeep is shared (the bound here is
    ;; the count of operations, not memory). Each row's sums keep the one-row order exactly.
    (local.set $row (i32.mul (i32.mul (local.get $kBlocks) (local.get $steps)) (i32.const 16)))
    (local.set $rowS (i32.shl (local.get $kBlocks) (i32.const 2)))
    (block $pairsDone
      (loop $pairLoop
        (br_if $pairsDone (i32.gt_u (i32.add (local.get $j) (i32.const 2)) (local.get $n)))
        (local.set $t (v128.const f32x4 0 0 0 0))
        (local.set $t2 (v128.const f32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $b (i32.const 0))
        (block $bDone
          (loop $bLoop
            (br_if $bDone (i32.ge_u (local.get $b) (local.get $kBlocks)))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $acc2 (v128.const f32x4 0 0 0 0))
            (local.set $st (local.get $steps))
            (loop $sLoop
              (local.set $v (v128.load (local.get $w)))
              (local.set $u (v128.load (i32.add (local.get $w) (local.get $row))))
              (local.set $xa (v128.load offset=0 (local.get $xp)))
              (local.set $xb (v128.load offset=16 (local.get $xp)))
              (local.set $p0 (f32x4.add (f32x4.mul (local.get $xa) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 28)) (i32.const 28)))) (f32x4.mul (local.get $xb) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 24)) (i32.const 28))))))
              (local.set $q0 (f32x4.add (f32x4.mul (local.get $xa) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $u) (i32.const 28)) (i32.const 28)))) (f32x4.mul (local.get $xb) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $u) (i32.const 24)) (i32.const 28))))))
              (local.set $xa (v128.load offset=32 (local.get $xp)))
              (local.set $xb (v128.load offset=48 (local.get $xp)))
              (local.set $p0 (f32x4.add (local.get $p0) (f32x4.add (f32x4.mul (local.get $xa) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 20)) (i32.const 28)))) (f32x4.mul (local.get $xb) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 16)) (i32.const 28)))))))
              (local.set $q0 (f32x4.add (local.get $q0) (f32x4.add (f32x4.mul (local.get $xa) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $u) (i32.const 20)) (i32.const 28)))) (f32x4.mul (local.get $xb) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $u) (i32.const 16)) (i32.const 28)))))))
              (local.set $xa (v128.load offset=64 (local.get $xp)))
              (local.set $xb (v128.load offset=80 (local.get $xp)))
              (local.set $p4 (f32x4.add (f32x4.mul (local.get $xa) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 12)) (i32.const 28)))) (f32x4.mul (local.get $xb) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 8)) (i32.const 28))))))
              (local.set $q4 (f32x4.add (f32x4.mul (local.get $xa) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $u) (i32.const 12)) (i32.const 28)))) (f32x4.mul (local.get $xb) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $u) (i32.const 8)) (i32.const 28))))))
              (local.set $xa (v128.load offset=96 (local.get $xp)))
              (local.set $xb (v128.load offset=112 (local.get $xp)))
              (local.set $p4 (f32x4.add (local.get $p4) (f32x4.add (f32x4.mul (local.get $xa) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 4)) (i32.const 28)))) (f32x4.mul (local.get $xb) (f32x4.convert_i32x4_s (i32x4.shr_s (local.get $v) (i32.const 28)))))))
              (local.set $q4 (f32x4.add (local.get $q4) (f32x4.add (f32x4.mul (local.get $xa) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $u) (i32.const 4)) (i32.const 28)))) (f32x4.mul (local.get $xb) (f32x4.convert_i32x4_s (i32x4.shr_s (local.get $u) (i32.const 28)))))))
              (local.set $acc (f32x4.add (local.get $acc) (f32x4.add (local.get $p0) (local.get $p4))))
              (local.set $acc2 (f32x4.add (local.get $acc2) (f32x4.add (local.get $q0) (local.get $q4))))
              (local.set $w (i32.add (local.get $w) (i32.const 16)))
              (local.set $xp (i32.add (local.get $xp) (i32.const 128)))
              (local.set $st (i32.sub (local.get $st) (i32.const 1)))
              (br_if $sLoop (local.get $st)))
            (local.set $t (f32x4.add (local.get $t) (f32x4.mul (local.get $acc) (f32x4.splat (f32.load (local.get $s))))))
            (local.set $t2 (f32x4.add (local.get $t2) (f32x4.mul (local.get $acc2) (f32x4.splat (f32.load (i32.add (local.get $s) (local.get $rowS)))))))
            (local.set $s (i32.add (local.get $s) (i32.const 4)))
            (local.set $b (i32.add (local.get $b) (i32.const 1)))
            (br $bLoop)))
        (f32.store (local.get $y) (call $hsumF (local.get $t)))
        (f32.store offset=4 (local.get $y) (call $hsumF (local.get $t2)))
        ;; $w and $s walked row j; row j + 1 is done too.
        (local.set $w (i32.add (local.get $w) (local.get $row)))
        (local.set $s (i32.add (local.get $s) (local.get $rowS)))
        (local.set $y (i32.add (local.get $y) (i32.const 8)))
        (local.set $j (i32.add (local.get $j) (i32.const 2)))
        (br $pairLoop)))
    (block $nDone
      (loop $nLoop
        (br_if $nDone (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $t (v128.const f32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $b (i32.const 0))
        (block $bDone
          (loop $bLoop
            (br_if $bDone (i32.ge_u (local.get $b) (local.get $kBlocks)))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $st (local.get $steps))
            (loop $sLoop
              (local.set $v (v128.load (local.get $w)))
              ;; Nibble r of int32 lane j, stored xor 8 so it reads as the signed code − 8: two shifts
              ;; sign-extend it, one conversion makes it a float.
              (local.set $w0
                (f32x4.add
                  (f32x4.add
                    (f32x4.mul (v128.load (local.get $xp)) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 28)) (i32.const 28))))
                    (f32x4.mul (v128.load offset=16 (local.get $xp)) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 24)) (i32.const 28)))))
                  (f32x4.add
                    (f32x4.mul (v128.load offset=32 (local.get $xp)) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 20)) (i32.const 28))))
                    (f32x4.mul (v128.load offset=48 (local.get $xp)) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 16)) (i32.const 28)))))))
              (local.set $w4
                (f32x4.add
                  (f32x4.add
                    (f32x4.mul (v128.load offset=64 (local.get $xp)) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 12)) (i32.const 28))))
                    (f32x4.mul (v128.load offset=80 (local.get $xp)) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 8)) (i32.const 28)))))
                  (f32x4.add
                    (f32x4.mul (v128.load offset=96 (local.get $xp)) (f32x4.convert_i32x4_s (i32x4.shr_s (i32x4.shl (local.get $v) (i32.const 4)) (i32.const 28))))
                    (f32x4.mul (v128.load offset=112 (local.get $xp)) (f32x4.convert_i32x4_s (i32x4.shr_s (local.get $v) (i32.const 28)))))))
              (local.set $acc (f32x4.add (local.get $acc) (f32x4.add (local.get $w0) (local.get $w4))))
              (local.set $w (i32.add (local.get $w) (i32.const 16)))
              (local.set $xp (i32.add (local.get $xp) (i32.const 128)))
              (local.set $st (i32.sub (local.get $st) (i32.const 1)))
              (br_if $sLoop (local.get $st)))
            (local.set $t (f32x4.add (local.get $t) (f32x4.mul (local.get $acc) (f32x4.splat (f32.load (local.get $s))))))
            (local.set $s (i32.add (local.get $s) (i32.const 4)))
            (local.set $b (i32.add (local.get $b) (i32.const 1)))
            (br $bLoop)))
        (f32.store (local.get $y) (call $hsumF (local.get $t)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $nLoop))))

  ;; MatMulBnb4 with K a multiple of the block and the block a multiple of 32 (every row whole
  ;; blocks, no padding): codes at $w (row n at n·K/2 bytes, HIGH nibble = even element), absmax
  ;; at $s (one per block, in row order), the 16 table floats as four byte planes at $planes
  ;; (plane j = byte j of every entry), x permuted at $x. Codes become floats by four i8x16.swizzle
  ;; lookups (one per byte plane) and a byte/halfword interleave.
  (func (export "gemvBnb4")
    (param $x i32) (param $w i32) (param $s i32) (param $planes i32) (param $y i32) (param $n i32) (param $kBlocks i32)
    (param $steps i32)
    (local $j i32) (local $b i32) (local $t v128) (local $acc v128) (local $v v128) (local $xp i32) (local $st i32)
    (local $p0 v128) (local $p1 v128) (local $p2 v128) (local $p3 v128) (local $hi v128) (local $lo v128)
    (local $c v128) (local $b1 v128) (local $b2 v128) (local $b3 v128) (local $t01 v128) (local $t23 v128)
    (local $w0 v128) (local $w1 v128) (local $w2 v128) (local $w3 v128) (local $w4 v128) (local $w5 v128) (local $w6 v128) (local $w7 v128)
    (local $M15 v128)
    (local.set $M15 (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15))
    (local.set $p0 (v128.load (local.get $planes)))
    (local.set $p1 (v128.load offset=16 (local.get $planes)))
    (local.set $p2 (v128.load offset=32 (local.get $planes)))
    (local.set $p3 (v128.load offset=48 (local.get $planes)))
    (block $nDone
      (loop $nLoop
        (br_if $nDone (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $t (v128.const f32x4 0 0 0 0))
        (local.set $xp (local.get $x))
        (local.set $b (i32.const 0))
        (block $bDone
          (loop $bLoop
            (br_if $bDone (i32.ge_u (local.get $b) (local.get $kBlocks)))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $st (local.get $steps))
            (loop $sLoop
              (local.set $v (v128.load (local.get $w)))
              (local.set $hi (v128.and (i16x8.shr_u (local.get $v) (i32.const 4)) (local.get $M15)))
              (local.set $lo (v128.and (local.get $v) (local.get $M15)))
              (local.set $c (i8x16.swizzle (local.get $p0) (local.get $hi)))
              (local.set $b1 (i8x16.swizzle (local.get $p1) (local.get $hi)))
              (local.set $b2 (i8x16.swizzle (local.get $p2) (local.get $hi)))
              (local.set $b3 (i8x16.swizzle (local.get $p3) (local.get $hi)))
              (local.set $t01 (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 (local.get $c) (local.get $b1)))
              (local.set $t23 (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 (local.get $b2) (local.get $b3)))
              (local.set $w0 (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $t01) (local.get $t23)))
              (local.set $w1 (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $t01) (local.get $t23)))
              (local.set $t01 (i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 (local.get $c) (local.get $b1)))
              (local.set $t23 (i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 (local.get $b2) (local.get $b3)))
              (local.set $w2 (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $t01) (local.get $t23)))
              (local.set $w3 (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $t01) (local.get $t23)))
              (local.set $c (i8x16.swizzle (local.get $p0) (local.get $lo)))
              (local.set $b1 (i8x16.swizzle (local.get $p1) (local.get $lo)))
              (local.set $b2 (i8x16.swizzle (local.get $p2) (local.get $lo)))
              (local.set $b3 (i8x16.swizzle (local.get $p3) (local.get $lo)))
              (local.set $t01 (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 (local.get $c) (local.get $b1)))
              (local.set $t23 (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 (local.get $b2) (local.get $b3)))
              (local.set $w4 (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $t01) (local.get $t23)))
              (local.set $w5 (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $t01) (local.get $t23)))
              (local.set $t01 (i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 (local.get $c) (local.get $b1)))
              (local.set $t23 (i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 (local.get $b2) (local.get $b3)))
              (local.set $w6 (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $t01) (local.get $t23)))
              (local.set $w7 (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $t01) (local.get $t23)))
              (local.set $acc (f32x4.add (local.get $acc) (f32x4.add
                (f32x4.add
                  (f32x4.add (f32x4.mul (v128.load (local.get $xp)) (local.get $w0)) (f32x4.mul (v128.load offset=16 (local.get $xp)) (local.get $w1)))
                  (f32x4.add (f32x4.mul (v128.load offset=32 (local.get $xp)) (local.get $w2)) (f32x4.mul (v128.load offset=48 (local.get $xp)) (local.get $w3))))
                (f32x4.add
                  (f32x4.add (f32x4.mul (v128.load offset=64 (local.get $xp)) (local.get $w4)) (f32x4.mul (v128.load offset=80 (local.get $xp)) (local.get $w5)))
                  (f32x4.add (f32x4.mul (v128.load offset=96 (local.get $xp)) (local.get $w6)) (f32x4.mul (v128.load offset=112 (local.get $xp)) (local.get $w7)))))))
              (local.set $w (i32.add (local.get $w) (i32.const 16)))
              (local.set $xp (i32.add (local.get $xp) (i32.const 128)))
              (local.set $st (i32.sub (local.get $st) (i32.const 1)))
              (br_if $sLoop (local.get $st)))
            (local.set $t (f32x4.add (local.get $t) (f32x4.mul (local.get $acc) (f32x4.splat (f32.load (local.get $s))))))
            (local.set $s (i32.add (local.get $s) (i32.const 4)))
            (local.set $b (i32.add (local.get $b) (i32.const 1)))
            (br $bLoop)))
        (f32.store (local.get $y) (call $hsumF (local.get $t)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $nLoop))))
)
