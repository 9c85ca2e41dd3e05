;; The per-block constant search of nf4 / fp4 (passes/weight-only/bnb4-quant.ts chooseConstant) in
;; WebAssembly SIMD. Built by scripts/build-wasm.mjs into bnb4-search-wasm.generated.ts; driven by
;; bnb4-search.ts.
;;
;; "Vertical" SIMD, as nbits.wat: four consecutive blocks are copied side by side into a scratch
;; (element i of the four blocks is one f32x4), so each lane runs one block's search in exactly the
;; order of the scalar JS code: every error and least-squares sum is a sequential float64 sum over
;; the block's elements, as in JS, hence bit-identical without reassociation. Blocks shorter than
;; the block size (the tensor's last) are padded with zeros, which add exactly nothing: x = 0 maps
;; to the table's 0 (the driver checks the table has one), so d = 0, x·t = 0 and t² = 0.
;;
;; Nearest table value of t = x·inv (the codebook's nearestCode with 'lower-value' ties): the
;; value sortedValues[k] with k = #{midpoints m : t > m}. NaN t (0·∞, when 1/s overflows) is
;; mapped to 0 first, as nearestCode maps NaN to the code of 0. The value's bit pattern is built as
;; bits(sortedValues[0]) + Σ_{j<k} (bits(sortedValues[j+1]) − bits(sortedValues[j])), one
;; compare, and, add per threshold (integer sums: exact). Two forms, chosen by the driver:
;;  - any table (≤ 16 values): the float64 midpoints m are replaced by float32 thresholds
;;    T = the largest float32 ≤ m, for which t > m ⟺ t > T for every float32 t (±Inf included).
;;  - a table symmetric about 0 (fp4: values ±m_0 = 0 < m_1 < … < m_7, all < 2): the magnitude
;;    index from |t| over the ≤ 7 positive midpoints p, then t's sign. A tie goes to the lower
;;    value, i.e. |t| > p picks the larger magnitude for t ≥ 0 but |t| ≥ p does for t < 0. Both
;;    are one signed integer compare of key = 2·min(bits(|t|), 2^30 − 1) + sign(t) against
;;    K = 2·bits(D) + (0 if p is a float32 else 1), D the largest float32 ≤ p (the driver's
;;    floatAtOrBelow; bnb4-search.ts derives it); the clamp keeps the key's sign bit clear and
;;    sits above every threshold (all < 2).
;;
;; Constants (written by the driver): TH 0: 15 thresholds, each splat (f32 T, or i32 K for the
;; symmetric form; padding never exceeded); DV 256: the first value's bits, then the 15 deltas,
;; each splat (padding 0); RATIO 512: the 31 candidate ratios (f32). Results of a pass: ERR 640
;; (f64 × 4), LS 704 (Σx·t × 4, Σt² × 4). ABS 768: the four blocks' absolute maxima (f32 × 4).
;; CAP2 784 and SIGN 800: i32x4 constants of $errSymmetric (written by the driver). CODES 816,
;; HALF 832: encode's (below). 848–911: encode's per-lane sums of a group. ROWS 1024–1215: the
;; search's table rows for $prepFast (written by $rows).
(module
  (memory (export "memory") 1)

  ;; One pass over the four blocks at the per-lane constants $s (inverse $inv): with $ls = 0,
  ;; Σ(x − f32(v·s))² to ERR (JS blockError without its early exit, which only ever cuts short a
  ;; sum that cannot win); with $ls = 1, Σx·v and Σv² to LS (JS leastSquaresSums); v = the table
  ;; value nearest x·inv (see above; $symmetric: the symmetric form). X at $xs (f32x4 per element),
  ;; the same promoted to float64 at $xd (two f64x2 per element). One function with the lookup
  ;; written inline: V8 does not inline WebAssembly calls, and a call in the loop spills every
  ;; register.
  (func $pass (param $xs i32) (param $xd i32) (param $n i32) (param $s v128) (param $inv v128) (param $ls i32) (param $symmetric i32)
    (local $i i32) (local $t v128) (local $v v128) (local $k v128) (local $u v128)
    (local $a0 v128) (local $a1 v128) (local $b0 v128) (local $b1 v128) (local $abs v128) (local $cap v128) (local $sign v128)
    (local.set $abs (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff))
    (local.set $cap (v128.const i32x4 0x3fffffff 0x3fffffff 0x3fffffff 0x3fffffff))
    (local.set $sign (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))
    (block $done
      (loop $el
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $t (f32x4.mul (v128.load (local.get $xs)) (local.get $inv)))
        (local.set $t (v128.and (local.get $t) (f32x4.eq (local.get $t) (local.get $t))))
        (local.set $v (v128.load offset=256 (i32.const 0)))
        (if (local.get $symmetric)
          (then
            (local.set $k (i32x4.add
              (i32x4.shl (i32x4.min_u (v128.and (local.get $t) (local.get $abs)) (local.get $cap)) (i32.const 1))
              (i32x4.shr_u (local.get $t) (i32.const 31))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=272 (i32.const 0)) (i32x4.gt_s (local.get $k) (v128.load offset=0 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=288 (i32.const 0)) (i32x4.gt_s (local.get $k) (v128.load offset=16 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=304 (i32.const 0)) (i32x4.gt_s (local.get $k) (v128.load offset=32 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=320 (i32.const 0)) (i32x4.gt_s (local.get $k) (v128.load offset=48 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=336 (i32.const 0)) (i32x4.gt_s (local.get $k) (v128.load offset=64 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=352 (i32.const 0)) (i32x4.gt_s (local.get $k) (v128.load offset=80 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=368 (i32.const 0)) (i32x4.gt_s (local.get $k) (v128.load offset=96 (i32.const 0))))))
            (local.set $v (v128.or (local.get $v) (v128.and (local.get $t) (local.get $sign)))))
          (else
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=272 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=0 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=288 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=16 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=304 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=32 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=320 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=48 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=336 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=64 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=352 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=80 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=368 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=96 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=384 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=112 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=400 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=128 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=416 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=144 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=432 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=160 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=448 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=176 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=464 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=192 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=480 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=208 (i32.const 0))))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (v128.load offset=496 (i32.const 0)) (f32x4.gt (local.get $t) (v128.load offset=224 (i32.const 0))))))))
        (if (local.get $ls)
          (then
            (local.set $u (f64x2.promote_low_f32x4 (local.get $v)))
            (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (v128.load (local.get $xd)) (local.get $u))))
            (local.set $b0 (f64x2.add (local.get $b0) (f64x2.mul (local.get $u) (local.get $u))))
            (local.set $u (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v))))
            (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (v128.load offset=16 (local.get $xd)) (local.get $u))))
            (local.set $b1 (f64x2.add (local.get $b1) (f64x2.mul (local.get $u) (local.get $u)))))
          (else
            (local.set $v (f32x4.mul (local.get $v) (local.get $s)))
            (local.set $u (f64x2.sub (v128.load (local.get $xd)) (f64x2.promote_low_f32x4 (local.get $v))))
            (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $u) (local.get $u))))
            (local.set $u (f64x2.sub (v128.load offset=16 (local.get $xd)) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))))
            (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $u) (local.get $u))))))
        (local.set $xs (i32.add (local.get $xs) (i32.const 16)))
        (local.set $xd (i32.add (local.get $xd) (i32.const 32)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $el)))
    (if (local.get $ls)
      (then
        (v128.store offset=704 (i32.const 0) (local.get $a0))
        (v128.store offset=720 (i32.const 0) (local.get $a1))
        (v128.store offset=736 (i32.const 0) (local.get $b0))
        (v128.store offset=752 (i32.const 0) (local.get $b1)))
      (else
        (v128.store offset=640 (i32.const 0) (local.get $a0))
        (v128.store offset=656 (i32.const 0) (local.get $a1)))))

  ;; $pass's error sums (ERR) for a symmetric table, the hot loop of the search: written out with
  ;; no branch in the loop (TurboFan keeps the sums in registers only then) and two elements a
  ;; turn sharing each threshold's loads; the sums still add element i before element i + 1.
  ;; $n must be even (block sizes are powers of two ≥ 16). Finite $inv only (no NaN t to map):
  ;; the key is min(bits(t) << 1, 2^31 − 2) + sign(t), the same key as $pass's (CAP2 784, SIGN
  ;; 800: constants from memory, one load each where V8 rebuilds a v128.const every turn).
  (func $errSymmetric (param $xs i32) (param $xd i32) (param $n i32) (param $s v128) (param $inv v128)
    (local $i i32) (local $t0 v128) (local $t1 v128) (local $k0 v128) (local $k1 v128) (local $v0 v128) (local $v1 v128)
    (local $c v128) (local $dv v128) (local $u v128) (local $a0 v128) (local $a1 v128) (local $cap v128) (local $sign v128)
    (block $done
      (loop $el
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $t0 (f32x4.mul (v128.load offset=0 (local.get $xs)) (local.get $inv)))
        (local.set $cap (v128.load offset=784 (i32.const 0)))
        (local.set $k0 (i32x4.add (i32x4.min_u (i32x4.shl (local.get $t0) (i32.const 1)) (local.get $cap))
                                    (i32x4.shr_u (local.get $t0) (i32.const 31))))
        (local.set $t1 (f32x4.mul (v128.load offset=16 (local.get $xs)) (local.get $inv)))
        (local.set $k1 (i32x4.add (i32x4.min_u (i32x4.shl (local.get $t1) (i32.const 1)) (local.get $cap))
                                    (i32x4.shr_u (local.get $t1) (i32.const 31))))
        (local.set $v0 (v128.load offset=256 (i32.const 0)))
        (local.set $v1 (local.get $v0))
        (local.set $c (v128.load offset=0 (i32.const 0)))
        (local.set $dv (v128.load offset=272 (i32.const 0)))
        (local.set $v0 (i32x4.add (local.get $v0) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k0) (local.get $c)))))
        (local.set $v1 (i32x4.add (local.get $v1) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k1) (local.get $c)))))
        (local.set $c (v128.load offset=16 (i32.const 0)))
        (local.set $dv (v128.load offset=288 (i32.const 0)))
        (local.set $v0 (i32x4.add (local.get $v0) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k0) (local.get $c)))))
        (local.set $v1 (i32x4.add (local.get $v1) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k1) (local.get $c)))))
        (local.set $c (v128.load offset=32 (i32.const 0)))
        (local.set $dv (v128.load offset=304 (i32.const 0)))
        (local.set $v0 (i32x4.add (local.get $v0) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k0) (local.get $c)))))
        (local.set $v1 (i32x4.add (local.get $v1) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k1) (local.get $c)))))
        (local.set $c (v128.load offset=48 (i32.const 0)))
        (local.set $dv (v128.load offset=320 (i32.const 0)))
        (local.set $v0 (i32x4.add (local.get $v0) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k0) (local.get $c)))))
        (local.set $v1 (i32x4.add (local.get $v1) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k1) (local.get $c)))))
        (local.set $c (v128.load offset=64 (i32.const 0)))
        (local.set $dv (v128.load offset=336 (i32.const 0)))
        (local.set $v0 (i32x4.add (local.get $v0) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k0) (local.get $c)))))
        (local.set $v1 (i32x4.add (local.get $v1) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k1) (local.get $c)))))
        (local.set $c (v128.load offset=80 (i32.const 0)))
        (local.set $dv (v128.load offset=352 (i32.const 0)))
        (local.set $v0 (i32x4.add (local.get $v0) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k0) (local.get $c)))))
        (local.set $v1 (i32x4.add (local.get $v1) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k1) (local.get $c)))))
        (local.set $c (v128.load offset=96 (i32.const 0)))
        (local.set $dv (v128.load offset=368 (i32.const 0)))
        (local.set $v0 (i32x4.add (local.get $v0) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k0) (local.get $c)))))
        (local.set $v1 (i32x4.add (local.get $v1) (v128.and (local.get $dv) (i32x4.gt_s (local.get $k1) (local.get $c)))))
        (local.set $v0 (f32x4.mul (v128.or (local.get $v0) (v128.and (local.get $t0) (local.tee $sign (v128.load offset=800 (i32.const 0))))) (local.get $s)))
        (local.set $u (f64x2.sub (v128.load offset=0 (local.get $xd)) (f64x2.promote_low_f32x4 (local.get $v0))))
        (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $u (f64x2.sub (v128.load offset=16 (local.get $xd)) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v0) (local.get $v0)))))
        (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $v1 (f32x4.mul (v128.or (local.get $v1) (v128.and (local.get $t1) (local.get $sign))) (local.get $s)))
        (local.set $u (f64x2.sub (v128.load offset=32 (local.get $xd)) (f64x2.promote_low_f32x4 (local.get $v1))))
        (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $u (f64x2.sub (v128.load offset=48 (local.get $xd)) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v1) (local.get $v1)))))
        (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $xs (i32.add (local.get $xs) (i32.const 32)))
        (local.set $xd (i32.add (local.get $xd) (i32.const 64)))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $el)))
    (v128.store offset=640 (i32.const 0) (local.get $a0))
    (v128.store offset=656 (i32.const 0) (local.get $a1)))

  ;; $errSymmetric's error sums (ERR) from per-element lookups prepared by $prepFast at $pe (80
  ;; bytes an element: base, T1, D1, T2, D2, each i32x4), for an inverse in $prepFast's range: the
  ;; value's bits are base + (D1 if k > T1) + (D2 if k > T2) with k = bits(t) as a signed integer
  ;; (T1, T2 in that form, see $prepFast): the value $errSymmetric's seven compares give, summed in
  ;; the same order.
  ;; $n even.
  (func $errFast (param $xs i32) (param $xd i32) (param $pe i32) (param $n i32) (param $s v128) (param $inv v128)
    (local $i i32) (local $k0 v128) (local $k1 v128) (local $v0 v128) (local $v1 v128)
    (local $u v128) (local $a0 v128) (local $a1 v128)
    (block $done
      (loop $el
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $k0 (f32x4.mul (v128.load offset=0 (local.get $xs)) (local.get $inv)))
        (local.set $k1 (f32x4.mul (v128.load offset=16 (local.get $xs)) (local.get $inv)))
        (local.set $v0 (i32x4.add (v128.load offset=0 (local.get $pe))
          (v128.and (v128.load offset=32 (local.get $pe)) (i32x4.gt_s (local.get $k0) (v128.load offset=16 (local.get $pe))))))
        (local.set $v0 (i32x4.add (local.get $v0)
          (v128.and (v128.load offset=64 (local.get $pe)) (i32x4.gt_s (local.get $k0) (v128.load offset=48 (local.get $pe))))))
        (local.set $v1 (i32x4.add (v128.load offset=80 (local.get $pe))
          (v128.and (v128.load offset=112 (local.get $pe)) (i32x4.gt_s (local.get $k1) (v128.load offset=96 (local.get $pe))))))
        (local.set $v1 (i32x4.add (local.get $v1)
          (v128.and (v128.load offset=144 (local.get $pe)) (i32x4.gt_s (local.get $k1) (v128.load offset=128 (local.get $pe))))))
        (local.set $v0 (f32x4.mul (local.get $v0) (local.get $s)))
        (local.set $u (f64x2.sub (v128.load offset=0 (local.get $xd)) (f64x2.promote_low_f32x4 (local.get $v0))))
        (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $u (f64x2.sub (v128.load offset=16 (local.get $xd)) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v0) (local.get $v0)))))
        (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $v1 (f32x4.mul (local.get $v1) (local.get $s)))
        (local.set $u (f64x2.sub (v128.load offset=32 (local.get $xd)) (f64x2.promote_low_f32x4 (local.get $v1))))
        (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $u (f64x2.sub (v128.load offset=48 (local.get $xd)) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v1) (local.get $v1)))))
        (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $xs (i32.add (local.get $xs) (i32.const 32)))
        (local.set $xd (i32.add (local.get $xd) (i32.const 64)))
        (local.set $pe (i32.add (local.get $pe) (i32.const 160)))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $el)))
    (v128.store offset=640 (i32.const 0) (local.get $a0))
    (v128.store offset=656 (i32.const 0) (local.get $a1)))

  ;; $pass's least-squares sums (LS) from $prepFast's lookups, as $errFast its error sums (an
  ;; inverse in $prepFast's range).
  (func $lsFast (param $xs i32) (param $xd i32) (param $pe i32) (param $n i32) (param $inv v128)
    (local $i i32) (local $k v128) (local $v v128) (local $u v128)
    (local $a0 v128) (local $a1 v128) (local $b0 v128) (local $b1 v128)
    (block $done
      (loop $el
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $k (f32x4.mul (v128.load (local.get $xs)) (local.get $inv)))
        (local.set $v (i32x4.add (v128.load offset=0 (local.get $pe))
          (v128.and (v128.load offset=32 (local.get $pe)) (i32x4.gt_s (local.get $k) (v128.load offset=16 (local.get $pe))))))
        (local.set $v (i32x4.add (local.get $v)
          (v128.and (v128.load offset=64 (local.get $pe)) (i32x4.gt_s (local.get $k) (v128.load offset=48 (local.get $pe))))))
        (local.set $u (f64x2.promote_low_f32x4 (local.get $v)))
        (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (v128.load (local.get $xd)) (local.get $u))))
        (local.set $b0 (f64x2.add (local.get $b0) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $u (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v))))
        (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (v128.load offset=16 (local.get $xd)) (local.get $u))))
        (local.set $b1 (f64x2.add (local.get $b1) (f64x2.mul (local.get $u) (local.get $u))))
        (local.set $xs (i32.add (local.get $xs) (i32.const 16)))
        (local.set $xd (i32.add (local.get $xd) (i32.const 32)))
        (local.set $pe (i32.add (local.get $pe) (i32.const 80)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $el)))
    (v128.store offset=704 (i32.const 0) (local.get $a0))
    (v128.store offset=720 (i32.const 0) (local.get $a1))
    (v128.store offset=736 (i32.const 0) (local.get $b0))
    (v128.store offset=752 (i32.const 0) (local.get $b1)))

  ;; The rows $prepFast reads by k_lo = 0 … 7 (ROWS 1024): base(k) = the value bits at k, the
  ;; first value's plus the first k deltas (1024); K(j) = threshold j, 2^31 − 1 from 7 on (1088,
  ;; ten entries); D(j) = delta j, 0 from 7 on (1152, nine entries).
  (func $rows
    (local $j i32) (local $base i32)
    (local.set $base (i32.load offset=256 (i32.const 0)))
    (loop $row
      (i32.store offset=1024 (i32.shl (local.get $j) (i32.const 2)) (local.get $base))
      (i32.store offset=1088 (i32.shl (local.get $j) (i32.const 2))
        (if (result i32) (i32.lt_u (local.get $j) (i32.const 7)) (then (i32.load (i32.shl (local.get $j) (i32.const 4)))) (else (i32.const 0x7fffffff))))
      (i32.store offset=1152 (i32.shl (local.get $j) (i32.const 2))
        (if (result i32) (i32.lt_u (local.get $j) (i32.const 7)) (then (i32.load offset=272 (i32.shl (local.get $j) (i32.const 4)))) (else (i32.const 0))))
      (if (i32.lt_u (local.get $j) (i32.const 7))
        (then (local.set $base (i32.add (local.get $base) (i32.load offset=272 (i32.shl (local.get $j) (i32.const 4)))))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $row (i32.lt_u (local.get $j) (i32.const 10)))))

  ;; Prepares $errFast / $lsFast for the four blocks at $xs (symmetric table) and every inverse
  ;; inv in [$inv0, $inv30] (finite): for each element, |t| = |f32(x·inv)| and its key
  ;; 2·min(bits(|t|), 2^30 − 1) + sign(t) rise with inv (float32 rounding keeps the order; the
  ;; sign of t is x's, inv > 0), so the thresholds below the key at $inv0 (k_lo of them) are below
  ;; it at every inv, and those the key at $inv30 does not exceed are never exceeded. The fp4
  ;; thresholds 0.0026 … 0.8333 are at least 1.4× apart, three of them span 2×, and the range is
  ;; 1.125 / 0.6875 = 1.64× wide: at most two lie between. The first two past k_lo are kept (T1,
  ;; T2, with their deltas D1, D2; an absent one is 2^31 − 1, never exceeded, delta 0) and base =
  ;; the value's bits at k_lo with x's sign (the deltas add to the magnitude below the sign bit).
  ;; With |t| < 2 at $inv30 the key's clamp never applies, and for b = bits(|t|) < 2^30 the key's
  ;; compare 2b + sign(x) > T is b > (T − sign(x)) >> 1, i.e. bits(t) > ((T − sign(x)) >> 1) less
  ;; 2^31 for x < 0, as signed integers: T1, T2 are stored so. Returns 0 when some element has a
  ;; third threshold between or |t| ≥ 2 (then $errSymmetric / $pass run).
  (func $prepFast (param $xs i32) (param $pe i32) (param $n i32) (param $inv0 v128) (param $inv30 v128) (result i32)
    (local $i i32) (local $x v128) (local $t v128) (local $sgn v128) (local $klo v128) (local $khi v128)
    (local $c v128) (local $bl v128) (local $bh v128) (local $bad v128) (local $neg v128)
    (block $done
      (loop $el
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $x (v128.load (local.get $xs)))
        (local.set $sgn (i32x4.shr_u (local.get $x) (i32.const 31)))
        (local.set $t (f32x4.mul (local.get $x) (local.get $inv0)))
        (local.set $klo (i32x4.add (i32x4.min_u (i32x4.shl (local.get $t) (i32.const 1)) (v128.load offset=784 (i32.const 0))) (local.get $sgn)))
        (local.set $t (f32x4.mul (local.get $x) (local.get $inv30)))
        ;; |t| < 2 at the last inverse, so at every one: the key's clamp never applies.
        (local.set $bad (v128.or (local.get $bad) (v128.not (f32x4.lt (f32x4.abs (local.get $t)) (v128.const f32x4 2 2 2 2)))))
        (local.set $khi (i32x4.add (i32x4.min_u (i32x4.shl (local.get $t) (i32.const 1)) (v128.load offset=784 (i32.const 0))) (local.get $sgn)))
        ;; k_lo = the number of thresholds below the first key (each compare is 0 or −1).
        (local.set $c (i32x4.sub (v128.const i32x4 0 0 0 0) (i32x4.gt_s (local.get $klo) (v128.load offset=0 (i32.const 0)))))
        (local.set $c (i32x4.sub (local.get $c) (i32x4.gt_s (local.get $klo) (v128.load offset=16 (i32.const 0)))))
        (local.set $c (i32x4.sub (local.get $c) (i32x4.gt_s (local.get $klo) (v128.load offset=32 (i32.const 0)))))
        (local.set $c (i32x4.sub (local.get $c) (i32x4.gt_s (local.get $klo) (v128.load offset=48 (i32.const 0)))))
        (local.set $c (i32x4.sub (local.get $c) (i32x4.gt_s (local.get $klo) (v128.load offset=64 (i32.const 0)))))
        (local.set $c (i32x4.sub (local.get $c) (i32x4.gt_s (local.get $klo) (v128.load offset=80 (i32.const 0)))))
        (local.set $c (i32x4.sub (local.get $c) (i32x4.gt_s (local.get $klo) (v128.load offset=96 (i32.const 0)))))
        ;; Byte indices of entry k_lo of an 8-entry i32 row: 4·k_lo + 0 … 3 in each lane; a row's
        ;; entries 0–3 are read with them, 4–7 with them less 16 (swizzle gives 0 out of range).
        ;; The rows (ROWS 1024, written by $rows): base 1024, K 1088 (T1; T2 at +4, T3 at +8),
        ;; D 1152 (D1; D2 at +4).
        (local.set $c (i32x4.shl (local.get $c) (i32.const 2)))
        (local.set $bl (i8x16.add (i8x16.shuffle 0 0 0 0 4 4 4 4 8 8 8 8 12 12 12 12 (local.get $c) (local.get $c))
          (v128.const i8x16 0 1 2 3 0 1 2 3 0 1 2 3 0 1 2 3)))
        (local.set $bh (i8x16.sub (local.get $bl) (v128.const i8x16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16 16)))
        (local.set $bad (v128.or (local.get $bad) (i32x4.gt_s (local.get $khi) (v128.or (i8x16.swizzle (v128.load offset=1096 (i32.const 0)) (local.get $bl)) (i8x16.swizzle (v128.load offset=1112 (i32.const 0)) (local.get $bh))))))
        (local.set $neg (v128.and (local.get $x) (v128.load offset=800 (i32.const 0))))
        (v128.store offset=0 (local.get $pe) (v128.or (local.get $neg) (v128.or (i8x16.swizzle (v128.load offset=1024 (i32.const 0)) (local.get $bl)) (i8x16.swizzle (v128.load offset=1040 (i32.const 0)) (local.get $bh)))))
        (v128.store offset=16 (local.get $pe) (v128.or (i32x4.shr_s (i32x4.sub (v128.or (i8x16.swizzle (v128.load offset=1088 (i32.const 0)) (local.get $bl)) (i8x16.swizzle (v128.load offset=1104 (i32.const 0)) (local.get $bh))) (local.get $sgn)) (i32.const 1)) (local.get $neg)))
        (v128.store offset=32 (local.get $pe) (v128.or (i8x16.swizzle (v128.load offset=1152 (i32.const 0)) (local.get $bl)) (i8x16.swizzle (v128.load offset=1168 (i32.const 0)) (local.get $bh))))
        (v128.store offset=48 (local.get $pe) (v128.or (i32x4.shr_s (i32x4.sub (v128.or (i8x16.swizzle (v128.load offset=1092 (i32.const 0)) (local.get $bl)) (i8x16.swizzle (v128.load offset=1108 (i32.const 0)) (local.get $bh))) (local.get $sgn)) (i32.const 1)) (local.get $neg)))
        (v128.store offset=64 (local.get $pe) (v128.or (i8x16.swizzle (v128.load offset=1156 (i32.const 0)) (local.get $bl)) (i8x16.swizzle (v128.load offset=1172 (i32.const 0)) (local.get $bh))))
        (local.set $xs (i32.add (local.get $xs) (i32.const 16)))
        (local.set $pe (i32.add (local.get $pe) (i32.const 80)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $el)))
    (i32.eqz (v128.any_true (local.get $bad))))

  ;; The error sums (ERR) at constants $s: $errFast where $fast and every lane's inverse lies in
  ;; [$inv0, $inv30] (the range $prepFast prepared), else $errPass.
  (func $err (param $xs i32) (param $xd i32) (param $pe i32) (param $n i32) (param $s v128) (param $symmetric i32)
    (param $fast i32) (param $inv0 v128) (param $inv30 v128)
    (local $inv v128)
    (local.set $inv (f32x4.div (v128.const f32x4 1 1 1 1) (local.get $s)))
    (if (i32.and (local.get $fast) (i32x4.all_true (v128.and (f32x4.ge (local.get $inv) (local.get $inv0)) (f32x4.le (local.get $inv) (local.get $inv30)))))
      (then (call $errFast (local.get $xs) (local.get $xd) (local.get $pe) (local.get $n) (local.get $s) (local.get $inv)))
      (else (call $errPass (local.get $xs) (local.get $xd) (local.get $n) (local.get $s) (local.get $inv) (local.get $symmetric)))))

  ;; $pass, or $errSymmetric where it applies.
  (func $errPass (param $xs i32) (param $xd i32) (param $n i32) (param $s v128) (param $inv v128) (param $symmetric i32)
    (if (i32.and (local.get $symmetric) (i32x4.all_true (f32x4.lt (local.get $inv) (v128.const f32x4 inf inf inf inf))))
      (then (call $errSymmetric (local.get $xs) (local.get $xd) (local.get $n) (local.get $s) (local.get $inv)))
      (else (call $pass (local.get $xs) (local.get $xd) (local.get $n) (local.get $s) (local.get $inv) (i32.const 0) (local.get $symmetric)))))

  ;; Two f64x2 lane masks (lanes 0–1, 2–3) as one i32x4 mask.
  (func $narrow (param $a v128) (param $b v128) (result v128)
    (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $a) (local.get $b)))

  ;; Blocks $g..$g+3 of the $len floats at $in side by side at $xs (element i of the four is the
  ;; f32x4 at $xs + 16·i; zeros past the tensor's end), and their f32s at $abs to ABS (0 past the
  ;; last of the $nb blocks).
  (func $gather (param $in i32) (param $len i32) (param $bs i32) (param $abs i32) (param $g i32) (param $nb i32) (param $xs i32)
    (local $j i32) (local $b i32) (local $i i32)
    (loop $lane
      (local.set $b (i32.add (local.get $g) (local.get $j)))
      (local.set $i (i32.const 0))
      (loop $copy
        (f32.store (i32.add (local.get $xs) (i32.shl (i32.add (i32.shl (local.get $i) (i32.const 2)) (local.get $j)) (i32.const 2)))
          (if (result f32) (i32.lt_u (i32.add (i32.mul (local.get $b) (local.get $bs)) (local.get $i)) (local.get $len))
            (then (f32.load (i32.add (local.get $in) (i32.shl (i32.add (i32.mul (local.get $b) (local.get $bs)) (local.get $i)) (i32.const 2)))))
            (else (f32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $copy (i32.lt_u (local.get $i) (local.get $bs))))
      (f32.store offset=768 (i32.shl (local.get $j) (i32.const 2))
        (if (result f32) (i32.lt_u (local.get $b) (local.get $nb))
          (then (f32.load (i32.add (local.get $abs) (i32.shl (local.get $b) (i32.const 2)))))
          (else (f32.const 0))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $lane (i32.lt_u (local.get $j) (i32.const 4)))))

  ;; The chosen constant of each of the ceil($len / $bs) blocks of the $len floats at $in, whose
  ;; absolute maxima are the f32s at $abs, to the f32s at $out (JS chooseConstant, block by block).
  ;; $xs: scratch of 128·$bs bytes, 16-aligned (x, x as f64, $prepFast's lookups). $symmetric: the table's form (see above).
  (func (export "search") (param $in i32) (param $len i32) (param $bs i32) (param $abs i32) (param $out i32) (param $xs i32) (param $symmetric i32)
    (local $nb i32) (local $g i32) (local $j i32) (local $i i32) (local $b i32) (local $xd i32) (local $r i32) (local $it i32)
    (local $x v128) (local $a v128) (local $s v128) (local $best v128) (local $bestA v128) (local $bestB v128)
    (local $eA v128) (local $eB v128) (local $mA v128) (local $mB v128) (local $act v128) (local $res v128)
    (local $pe i32) (local $fast i32) (local $inv0 v128) (local $inv30 v128) (local $inv v128)
    (local.set $nb (i32.div_u (i32.sub (i32.add (local.get $len) (local.get $bs)) (i32.const 1)) (local.get $bs)))
    (local.set $xd (i32.add (local.get $xs) (i32.shl (local.get $bs) (i32.const 4))))
    (local.set $pe (i32.add (local.get $xs) (i32.mul (local.get $bs) (i32.const 48))))
    (call $rows)
    (block $groups
      (loop $group
        (br_if $groups (i32.ge_u (local.get $g) (local.get $nb)))
        (call $gather (local.get $in) (local.get $len) (local.get $bs) (local.get $abs) (local.get $g) (local.get $nb) (local.get $xs))
        (local.set $a (v128.load offset=768 (i32.const 0)))
        (local.set $i (i32.const 0))
        (loop $promote
          (local.set $x (v128.load (i32.add (local.get $xs) (i32.shl (local.get $i) (i32.const 4)))))
          (v128.store (i32.add (local.get $xd) (i32.shl (local.get $i) (i32.const 5))) (f64x2.promote_low_f32x4 (local.get $x)))
          (v128.store offset=16 (i32.add (local.get $xd) (i32.shl (local.get $i) (i32.const 5))) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $x) (local.get $x))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $promote (i32.lt_u (local.get $i) (local.get $bs))))
        ;; $errFast / $lsFast where they apply: a symmetric table, and lookups prepared for the
        ;; inverses of the constants from a·HI down to a·LO (all finite; $inv0, $inv30), which
        ;; hold the ratios and most least-squares steps; a pass at an inverse out of that range
        ;; takes $errPass / $pass.
        (local.set $inv0 (f32x4.div (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $a) (v128.const f32x4 1.125 1.125 1.125 1.125))))
        (local.set $inv30 (f32x4.div (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $a) (v128.const f32x4 0.6875 0.6875 0.6875 0.6875))))
        (local.set $fast (i32.and (local.get $symmetric)
          (i32x4.all_true (f32x4.lt (local.get $inv30) (v128.const f32x4 inf inf inf inf)))))
        (if (local.get $fast)
          (then (local.set $fast (call $prepFast (local.get $xs) (local.get $pe) (local.get $bs) (local.get $inv0) (local.get $inv30)))))
        ;; Ratio 1 (the absmax itself), then each smaller ratio replacing the best on a strictly
        ;; smaller error (ties keep the earlier candidate).
        (local.set $best (local.get $a))
        (call $err (local.get $xs) (local.get $xd) (local.get $pe) (local.get $bs) (local.get $a) (local.get $symmetric)
          (local.get $fast) (local.get $inv0) (local.get $inv30))
        (local.set $bestA (v128.load offset=640 (i32.const 0)))
        (local.set $bestB (v128.load offset=656 (i32.const 0)))
        (local.set $r (i32.const 1))
        (loop $ratio
          (local.set $s (f32x4.mul (local.get $a) (v128.load32_splat offset=512 (i32.shl (local.get $r) (i32.const 2)))))
          (call $err (local.get $xs) (local.get $xd) (local.get $pe) (local.get $bs) (local.get $s) (local.get $symmetric)
            (local.get $fast) (local.get $inv0) (local.get $inv30))
          (local.set $eA (v128.load offset=640 (i32.const 0)))
          (local.set $eB (v128.load offset=656 (i32.const 0)))
          (local.set $mA (f64x2.lt (local.get $eA) (local.get $bestA)))
          (local.set $mB (f64x2.lt (local.get $eB) (local.get $bestB)))
          (local.set $best (v128.bitselect (local.get $s) (local.get $best) (call $narrow (local.get $mA) (local.get $mB))))
          (local.set $bestA (v128.bitselect (local.get $eA) (local.get $bestA) (local.get $mA)))
          (local.set $bestB (v128.bitselect (local.get $eB) (local.get $bestB) (local.get $mB)))
          (local.set $r (i32.add (local.get $r) (i32.const 1)))
          (br_if $ratio (i32.lt_u (local.get $r) (i32.const 31))))
        ;; Up to three least-squares steps; a lane stops at its first step that does not help.
        (local.set $act (v128.const i32x4 -1 -1 -1 -1))
        (local.set $it (i32.const 0))
        (block $refined
          (loop $step
            ;; $lsFast / $errFast where every lane's inverse lies within the ratios' (see $prepFast).
            (local.set $inv (f32x4.div (v128.const f32x4 1 1 1 1) (local.get $best)))
            (if (i32.and (local.get $fast) (i32x4.all_true (v128.and (f32x4.ge (local.get $inv) (local.get $inv0)) (f32x4.le (local.get $inv) (local.get $inv30)))))
              (then (call $lsFast (local.get $xs) (local.get $xd) (local.get $pe) (local.get $bs) (local.get $inv)))
              (else (call $pass (local.get $xs) (local.get $xd) (local.get $bs) (local.get $best) (local.get $inv) (i32.const 1) (local.get $symmetric))))
            (local.set $s (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
              (f32x4.demote_f64x2_zero (f64x2.div (v128.load offset=704 (i32.const 0)) (v128.load offset=736 (i32.const 0))))
              (f32x4.demote_f64x2_zero (f64x2.div (v128.load offset=720 (i32.const 0)) (v128.load offset=752 (i32.const 0))))))
            (local.set $act (v128.and (local.get $act) (v128.and
              (call $narrow (f64x2.gt (v128.load offset=736 (i32.const 0)) (f64x2.splat (f64.const 0)))
                            (f64x2.gt (v128.load offset=752 (i32.const 0)) (f64x2.splat (f64.const 0))))
              (f32x4.gt (local.get $s) (f32x4.splat (f32.const 0))))))
            (br_if $refined (i32.eqz (v128.any_true (local.get $act))))
            (call $err (local.get $xs) (local.get $xd) (local.get $pe) (local.get $bs) (local.get $s) (local.get $symmetric)
              (local.get $fast) (local.get $inv0) (local.get $inv30))
            (local.set $eA (v128.load offset=640 (i32.const 0)))
            (local.set $eB (v128.load offset=656 (i32.const 0)))
            (local.set $act (v128.and (local.get $act)
              (call $narrow (f64x2.lt (local.get $eA) (local.get $bestA)) (f64x2.lt (local.get $eB) (local.get $bestB)))))
            (local.set $best (v128.bitselect (local.get $s) (local.get $best) (local.get $act)))
            (local.set $bestA (v128.bitselect (local.get $eA) (local.get $bestA) (i64x2.extend_low_i32x4_s (local.get $act))))
            (local.set $bestB (v128.bitselect (local.get $eB) (local.get $bestB) (i64x2.extend_high_i32x4_s (local.get $act))))
            (br_if $refined (i32.eqz (v128.any_true (local.get $act))))
            (local.set $it (i32.add (local.get $it) (i32.const 1)))
            (br_if $step (i32.lt_u (local.get $it) (i32.const 3)))))
        ;; An all-zero block (absmax 0) keeps the constant +0.
        (local.set $res (v128.andnot (local.get $best) (f32x4.eq (local.get $a) (f32x4.splat (f32.const 0)))))
        (local.set $j (i32.const 0))
        (block $stored
          (loop $store
            (local.set $b (i32.add (local.get $g) (local.get $j)))
            (br_if $stored (i32.ge_u (local.get $b) (local.get $nb)))
            (f32.store (i32.add (local.get $out) (i32.shl (local.get $b) (i32.const 2))) (f32x4.extract_lane 0 (local.get $res)))
            (local.set $res (i8x16.shuffle 4 5 6 7 8 9 10 11 12 13 14 15 0 1 2 3 (local.get $res) (local.get $res)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $store (i32.lt_u (local.get $j) (i32.const 4)))))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (br $group))))

  ;; The codes of each of the ceil($len / $bs) blocks of the $len floats at $in at its constant s
  ;; (the f32s at $abs), one byte each to $codes (JS encodeBlock: the code of the table value
  ;; nearest x·f32(1/s); an all-zero block's s = 0 gives the code of 0 throughout, as there), and
  ;; each block's Σx² and Σ(x − f32(value·s))², summed in block order onto the two f64 at $sums
  ;; (JS quantizeBnb4's signalSq, noiseSq). The code of table index k is byte k of CODES 816; the
  ;; symmetric form's index is HALF 832 (i32x4) ± the magnitude index.
  (func (export "encode") (param $in i32) (param $len i32) (param $bs i32) (param $abs i32) (param $codes i32) (param $xs i32)
        (param $symmetric i32) (param $sums i32)
    (local $nb i32) (local $g i32) (local $i i32) (local $j i32) (local $p i32)
    (local $x v128) (local $s v128) (local $inv v128) (local $t v128) (local $k v128) (local $m v128) (local $v v128)
    (local $idx v128) (local $neg v128) (local $c v128) (local $u v128) (local $w v128)
    (local $sigA v128) (local $sigB v128) (local $noiseA v128) (local $noiseB v128)
    (local.set $nb (i32.div_u (i32.sub (i32.add (local.get $len) (local.get $bs)) (i32.const 1)) (local.get $bs)))
    (block $groups
      (loop $group
        (br_if $groups (i32.ge_u (local.get $g) (local.get $nb)))
        (call $gather (local.get $in) (local.get $len) (local.get $bs) (local.get $abs) (local.get $g) (local.get $nb) (local.get $xs))
        (local.set $s (v128.load offset=768 (i32.const 0)))
        (local.set $inv (f32x4.div (v128.const f32x4 1 1 1 1) (local.get $s)))
        (local.set $sigA (v128.const i32x4 0 0 0 0))
        (local.set $sigB (v128.const i32x4 0 0 0 0))
        (local.set $noiseA (v128.const i32x4 0 0 0 0))
        (local.set $noiseB (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (loop $el
          (local.set $x (v128.load (i32.add (local.get $xs) (i32.shl (local.get $i) (i32.const 4)))))
          (local.set $t (f32x4.mul (local.get $x) (local.get $inv)))
          (local.set $t (v128.and (local.get $t) (f32x4.eq (local.get $t) (local.get $t))))
          (local.set $v (v128.load offset=256 (i32.const 0)))
          (if (local.get $symmetric)
            (then
              (local.set $idx (v128.const i32x4 0 0 0 0))
              (local.set $k (i32x4.add (i32x4.min_u (i32x4.shl (local.get $t) (i32.const 1)) (v128.load offset=784 (i32.const 0)))
                                       (i32x4.shr_u (local.get $t) (i32.const 31))))
            (local.set $m (i32x4.gt_s (local.get $k) (v128.load offset=0 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=272 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (i32x4.gt_s (local.get $k) (v128.load offset=16 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=288 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (i32x4.gt_s (local.get $k) (v128.load offset=32 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=304 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (i32x4.gt_s (local.get $k) (v128.load offset=48 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=320 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (i32x4.gt_s (local.get $k) (v128.load offset=64 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=336 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (i32x4.gt_s (local.get $k) (v128.load offset=80 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=352 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (i32x4.gt_s (local.get $k) (v128.load offset=96 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=368 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
              (local.set $v (v128.or (local.get $v) (v128.and (local.get $t) (v128.load offset=800 (i32.const 0)))))
              (local.set $neg (i32x4.shr_s (local.get $t) (i32.const 31)))
              (local.set $idx (i32x4.add (v128.load offset=832 (i32.const 0))
                (i32x4.sub (v128.xor (local.get $idx) (local.get $neg)) (local.get $neg)))))
            (else
              (local.set $idx (v128.const i32x4 0 0 0 0))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=0 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=272 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=16 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=288 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=32 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=304 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=48 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=320 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=64 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=336 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=80 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=352 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=96 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=368 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=112 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=384 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=128 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=400 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=144 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=416 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=160 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=432 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=176 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=448 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=192 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=464 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=208 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=480 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))
            (local.set $m (f32x4.gt (local.get $t) (v128.load offset=224 (i32.const 0))))
            (local.set $v (i32x4.add (local.get $v) (v128.and (local.get $m) (v128.load offset=496 (i32.const 0)))))
            (local.set $idx (i32x4.sub (local.get $idx) (local.get $m)))))
          (local.set $c (i8x16.swizzle (v128.load offset=816 (i32.const 0)) (local.get $idx)))
        (if (i32.lt_u (i32.add (i32.mul (i32.add (local.get $g) (i32.const 0)) (local.get $bs)) (local.get $i)) (local.get $len))
          (then (i32.store8 (i32.add (local.get $codes) (i32.add (i32.mul (i32.add (local.get $g) (i32.const 0)) (local.get $bs)) (local.get $i)))
            (i8x16.extract_lane_u 0 (local.get $c)))))
        (if (i32.lt_u (i32.add (i32.mul (i32.add (local.get $g) (i32.const 1)) (local.get $bs)) (local.get $i)) (local.get $len))
          (then (i32.store8 (i32.add (local.get $codes) (i32.add (i32.mul (i32.add (local.get $g) (i32.const 1)) (local.get $bs)) (local.get $i)))
            (i8x16.extract_lane_u 4 (local.get $c)))))
        (if (i32.lt_u (i32.add (i32.mul (i32.add (local.get $g) (i32.const 2)) (local.get $bs)) (local.get $i)) (local.get $len))
          (then (i32.store8 (i32.add (local.get $codes) (i32.add (i32.mul (i32.add (local.get $g) (i32.const 2)) (local.get $bs)) (local.get $i)))
            (i8x16.extract_lane_u 8 (local.get $c)))))
        (if (i32.lt_u (i32.add (i32.mul (i32.add (local.get $g) (i32.const 3)) (local.get $bs)) (local.get $i)) (local.get $len))
          (then (i32.store8 (i32.add (local.get $codes) (i32.add (i32.mul (i32.add (local.get $g) (i32.const 3)) (local.get $bs)) (local.get $i)))
            (i8x16.extract_lane_u 12 (local.get $c)))))
          (local.set $v (f32x4.mul (local.get $v) (local.get $s)))
          (local.set $u (f64x2.promote_low_f32x4 (local.get $x)))
          (local.set $w (f64x2.sub (local.get $u) (f64x2.promote_low_f32x4 (local.get $v))))
          (local.set $sigA (f64x2.add (local.get $sigA) (f64x2.mul (local.get $u) (local.get $u))))
          (local.set $noiseA (f64x2.add (local.get $noiseA) (f64x2.mul (local.get $w) (local.get $w))))
          (local.set $u (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $x) (local.get $x))))
          (local.set $w (f64x2.sub (local.get $u) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))))
          (local.set $sigB (f64x2.add (local.get $sigB) (f64x2.mul (local.get $u) (local.get $u))))
          (local.set $noiseB (f64x2.add (local.get $noiseB) (f64x2.mul (local.get $w) (local.get $w))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $el (i32.lt_u (local.get $i) (local.get $bs))))
        ;; The real blocks' sums onto the running totals, block by block.
        (v128.store offset=848 (i32.const 0) (local.get $sigA))
        (v128.store offset=864 (i32.const 0) (local.get $sigB))
        (v128.store offset=880 (i32.const 0) (local.get $noiseA))
        (v128.store offset=896 (i32.const 0) (local.get $noiseB))
        (local.set $j (i32.const 0))
        (block $added
          (loop $add
            (br_if $added (i32.ge_u (i32.add (local.get $g) (local.get $j)) (local.get $nb)))
            (local.set $p (i32.shl (local.get $j) (i32.const 3)))
            (f64.store (local.get $sums) (f64.add (f64.load (local.get $sums)) (f64.load offset=848 (local.get $p))))
            (f64.store offset=8 (local.get $sums) (f64.add (f64.load offset=8 (local.get $sums)) (f64.load offset=880 (local.get $p))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $add (i32.lt_u (local.get $j) (i32.const 4)))))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (br $group))))
)
