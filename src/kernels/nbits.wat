;; Symmetric block quantization (MatMulNBits q4 / q8-block, the error-minimising scale search of
;; quant/nbits-quant.ts) in WebAssembly SIMD. Built by scripts/build-wasm.mjs into
;; nbits-wasm.generated.ts; driven by nbits-wasm.ts.
;;
;; Layout: one strip of `rows` (≤ block size) rows of a MatMul weight B [K, N], row-major with a row
;; stride of N4 floats (N rounded up to 4). Block n of the strip is column n, so four adjacent
;; columns are four blocks and one f32x4 load reads row i of four blocks at once ("vertical" SIMD):
;; every lane runs one block's computation in exactly the order of the scalar JS kernel (each sum
;; is sequential over i), so results are bit-identical to it without any reassociation. Per-element
;; arithmetic is float64, as in the JS kernel (a float32 weight times a float64 inverse scale is
;; exact in float64; f64x2.nearest is round half to even, as JS's 1.5·2^52 trick), two lanes per
;; f64x2 op. The few per-block scalars between passes are computed lane by lane in scalar code
;; (the same float64 expressions, in the same order, as the JS kernel).
;;
;; Scratch at $acc (f64 unless noted): 0 signal Σx² (running), 8 noise (running), then per lane
;; (4 × 8 bytes each): XX 16, M 48 (f32), XC1 64, CC1 96, XC2 128, CC2 160, I1 192, I2 224,
;; A 256, B 288, START 320, STARTERR 352, INV 384, XC 416, CC 448, S1 480.
(module
  (memory (export "memory") 1)

  ;; A sane stored scale (JS saneScale): float32-rounded, finite, normal, never 0.
  (func $sane (param $s f64) (result f64)
    (local $a f64)
    (local.set $a (f64.promote_f32 (f32.demote_f64 (local.get $s))))
    (if (result f64)
      (i32.or
        (i32.eqz (f64.ge (f64.abs (local.get $a)) (f64.const 0x1p-126)))
        (i32.eqz (f64.lt (f64.abs (local.get $a)) (f64.const inf))))
      (then (select (f64.const -0x1p-126) (f64.const 0x1p-126) (f64.lt (local.get $a) (f64.const 0))))
      (else (local.get $a))))

  ;; Σ(x − s·c)² from the sums, as JS evaluates xx − 2·s·xc + s·s·cc.
  (func $sqErr (param $xx f64) (param $s f64) (param $xc f64) (param $cc f64) (result f64)
    (f64.add
      (f64.sub (local.get $xx) (f64.mul (f64.mul (f64.const 2) (local.get $s)) (local.get $xc)))
      (f64.mul (f64.mul (local.get $s) (local.get $s)) (local.get $cc))))

  ;; Lane j after pass 1: the two start scales (RTN's m → −mid, and m → mid − 1) and their inverses.
  (func $starts (param $acc i32) (param $j i32) (param $mid f64)
    (local $o i32) (local $m f64) (local $a f64) (local $b f64)
    (local.set $o (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
    (local.set $m (f64.promote_f32 (f32.load offset=48 (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 2))))))
    (local.set $a (call $sane (f64.div (local.get $m) (f64.neg (local.get $mid)))))
    (local.set $b (call $sane (f64.div (local.get $m) (f64.sub (local.get $mid) (f64.const 1)))))
    (f64.store offset=256 (local.get $o) (local.get $a))
    (f64.store offset=288 (local.get $o) (local.get $b))
    (f64.store offset=192 (local.get $o) (f64.div (f64.const 1) (local.get $a)))
    (f64.store offset=224 (local.get $o) (f64.div (f64.const 1) (local.get $b))))

  ;; Lane j after pass 2: the better start, its error, and its least-squares scale s1 (→ INV = 1/s1).
  (func $choose (param $acc i32) (param $j i32)
    (local $o i32) (local $xx f64) (local $eA f64) (local $eB f64) (local $useB i32) (local $s1 f64)
    (local.set $o (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
    (local.set $xx (f64.load offset=16 (local.get $o)))
    (local.set $eA (call $sqErr (local.get $xx) (f64.load offset=256 (local.get $o)) (f64.load offset=64 (local.get $o)) (f64.load offset=96 (local.get $o))))
    (local.set $eB (call $sqErr (local.get $xx) (f64.load offset=288 (local.get $o)) (f64.load offset=128 (local.get $o)) (f64.load offset=160 (local.get $o))))
    (local.set $useB (f64.lt (local.get $eB) (local.get $eA)))
    (f64.store offset=320 (local.get $o) (select (f64.load offset=288 (local.get $o)) (f64.load offset=256 (local.get $o)) (local.get $useB)))
    (f64.store offset=352 (local.get $o) (select (local.get $eB) (local.get $eA) (local.get $useB)))
    (local.set $s1
      (if (result f64) (local.get $useB)
        (then (call $sane (f64.div (f64.load offset=128 (local.get $o)) (f64.load offset=160 (local.get $o)))))
        (else (call $sane (f64.div (f64.load offset=64 (local.get $o)) (f64.load offset=96 (local.get $o)))))))
    (f64.store offset=480 (local.get $o) (local.get $s1))
    (f64.store offset=384 (local.get $o) (f64.div (f64.const 1) (local.get $s1))))

  ;; Lane j after pass 3: the chosen scale (one more least-squares step on the kept codes), stored at
  ;; $sdst when the lane is a real column; adds Σx² and the error to the running sums. Returns 1 when
  ;; the refined codes lost to the start (the caller re-rounds at INV = 1/start, set here).
  (func $finish (param $acc i32) (param $j i32) (param $sdst i32) (param $real i32) (result i32)
    (local $o i32) (local $xx f64) (local $xc f64) (local $cc f64) (local $best f64) (local $bestErr f64)
    (local $s2 f64) (local $e2 f64) (local $kept i32) (local $zero i32)
    (local.set $o (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))))
    (local.set $xx (f64.load offset=16 (local.get $o)))
    (local.set $xc (f64.load offset=416 (local.get $o)))
    (local.set $cc (f64.load offset=448 (local.get $o)))
    (local.set $best (f64.load offset=480 (local.get $o)))
    (local.set $bestErr (call $sqErr (local.get $xx) (local.get $best) (local.get $xc) (local.get $cc)))
    (if (f64.gt (local.get $cc) (f64.const 0))
      (then
        (local.set $s2 (call $sane (f64.div (local.get $xc) (local.get $cc))))
        (local.set $e2 (call $sqErr (local.get $xx) (local.get $s2) (local.get $xc) (local.get $cc)))
        (if (f64.lt (local.get $e2) (local.get $bestErr))
          (then (local.set $best (local.get $s2)) (local.set $bestErr (local.get $e2))))))
    (local.set $kept (f64.lt (local.get $bestErr) (f64.load offset=352 (local.get $o))))
    ;; m = 0 (a block of zeros): scale 1, every code = mid (it is, at any finite inverse), no error.
    (local.set $zero (f32.eq (f32.load offset=48 (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 2)))) (f32.const 0)))
    (if (local.get $real)
      (then
        (f32.store (local.get $sdst)
          (if (result f32) (local.get $zero)
            (then (f32.const 1))
            (else (f32.demote_f64 (select (local.get $best) (f64.load offset=320 (local.get $o)) (local.get $kept))))))
        (f64.store (local.get $acc) (f64.add (f64.load (local.get $acc)) (local.get $xx)))
        (f64.store offset=8 (local.get $acc)
          (f64.add (f64.load offset=8 (local.get $acc))
            (if (result f64) (local.get $zero)
              (then (f64.const 0))
              (else (f64.max (f64.const 0) (select (local.get $bestErr) (f64.load offset=352 (local.get $o)) (local.get $kept)))))))))
    (if (result i32) (i32.or (local.get $kept) (local.get $zero))
      (then (i32.const 0))
      (else
        (f64.store offset=384 (local.get $o) (f64.div (f64.const 1) (f64.load offset=320 (local.get $o))))
        (i32.const 1))))

  ;; The low byte of each i32 lane of $v to $addr + lane·$stride.
  (func $store4 (param $addr i32) (param $stride i32) (param $v v128)
    (i32.store8 (local.get $addr) (i32x4.extract_lane 0 (local.get $v)))
    (i32.store8 (i32.add (local.get $addr) (local.get $stride)) (i32x4.extract_lane 1 (local.get $v)))
    (i32.store8 (i32.add (local.get $addr) (i32.shl (local.get $stride) (i32.const 1))) (i32x4.extract_lane 2 (local.get $v)))
    (i32.store8 (i32.add (local.get $addr) (i32.mul (local.get $stride) (i32.const 3))) (i32x4.extract_lane 3 (local.get $v))))

  ;; Codes of four blocks at the per-lane inverse scales INV: c = clamp(rne(x·inv), −mid, qmax − mid),
  ;; packed (code c + mid, first element in the low bits) to $dst + lane·$stride, the block padded
  ;; with code mid after `rows`; Σx·c and Σc² to XC, CC.
  (func $codes (param $col i32) (param $rowStride i32) (param $rows i32) (param $bits i32) (param $blob i32)
               (param $dst i32) (param $stride i32) (param $acc i32)
    (local $i i32) (local $p i32) (local $v v128) (local $xa v128) (local $xb v128) (local $ca v128) (local $cb v128)
    (local $invA v128) (local $invB v128) (local $lo v128) (local $hi v128) (local $mid i32) (local $midv v128)
    (local $xcA v128) (local $xcB v128) (local $ccA v128) (local $ccB v128) (local $q v128) (local $prev v128) (local $pad i32)
    (local.set $mid (i32.shl (i32.const 1) (i32.sub (local.get $bits) (i32.const 1))))
    (local.set $midv (i32x4.splat (local.get $mid)))
    (local.set $lo (f64x2.splat (f64.neg (f64.convert_i32_s (local.get $mid)))))
    (local.set $hi (f64x2.splat (f64.convert_i32_s (i32.sub (i32.sub (i32.shl (i32.const 1) (local.get $bits)) (i32.const 1)) (local.get $mid)))))
    (local.set $invA (v128.load offset=384 (local.get $acc)))
    (local.set $invB (v128.load offset=400 (local.get $acc)))
    (local.set $p (local.get $col))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $xa (f64x2.promote_low_f32x4 (local.get $v)))
        (local.set $xb (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v))))
        (local.set $ca (f64x2.pmin (f64x2.pmax (f64x2.nearest (f64x2.mul (local.get $xa) (local.get $invA))) (local.get $lo)) (local.get $hi)))
        (local.set $cb (f64x2.pmin (f64x2.pmax (f64x2.nearest (f64x2.mul (local.get $xb) (local.get $invB))) (local.get $lo)) (local.get $hi)))
        (local.set $xcA (f64x2.add (local.get $xcA) (f64x2.mul (local.get $xa) (local.get $ca))))
        (local.set $ccA (f64x2.add (local.get $ccA) (f64x2.mul (local.get $ca) (local.get $ca))))
        (local.set $xcB (f64x2.add (local.get $xcB) (f64x2.mul (local.get $xb) (local.get $cb))))
        (local.set $ccB (f64x2.add (local.get $ccB) (f64x2.mul (local.get $cb) (local.get $cb))))
        (local.set $q (i32x4.add (local.get $midv)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (i32x4.trunc_sat_f64x2_s_zero (local.get $ca)) (i32x4.trunc_sat_f64x2_s_zero (local.get $cb)))))
        (if (i32.eq (local.get $bits) (i32.const 8))
          (then (call $store4 (i32.add (local.get $dst) (local.get $i)) (local.get $stride) (local.get $q)))
          (else
            (if (i32.and (local.get $i) (i32.const 1))
              (then (call $store4 (i32.add (local.get $dst) (i32.shr_u (local.get $i) (i32.const 1))) (local.get $stride)
                (v128.or (local.get $prev) (i32x4.shl (local.get $q) (i32.const 4)))))
              (else (local.set $prev (local.get $q))))))
        (local.set $p (i32.add (local.get $p) (local.get $rowStride)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $row)))
    (v128.store offset=416 (local.get $acc) (local.get $xcA))
    (v128.store offset=432 (local.get $acc) (local.get $xcB))
    (v128.store offset=448 (local.get $acc) (local.get $ccA))
    (v128.store offset=464 (local.get $acc) (local.get $ccB))
    ;; Padding of a short (last) strip: an odd q4 row count leaves a high nibble; then whole bytes.
    (if (i32.eq (local.get $bits) (i32.const 8))
      (then (local.set $pad (local.get $mid)) (local.set $i (local.get $rows)))
      (else
        (local.set $pad (i32.mul (local.get $mid) (i32.const 17)))
        (if (i32.and (local.get $rows) (i32.const 1))
          (then (call $store4 (i32.add (local.get $dst) (i32.shr_u (local.get $rows) (i32.const 1))) (local.get $stride)
            (v128.or (local.get $prev) (i32x4.shl (local.get $midv) (i32.const 4))))))
        (local.set $i (i32.shr_u (i32.add (local.get $rows) (i32.const 1)) (i32.const 1)))))
    (block $padded
      (loop $fill
        (br_if $padded (i32.ge_u (local.get $i) (local.get $blob)))
        (call $store4 (i32.add (local.get $dst) (local.get $i)) (local.get $stride) (i32x4.splat (local.get $pad)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill))))

  ;; One strip: all N4/4 groups of four blocks. $dst/$sdst: packed/scales address of block (0, b);
  ;; $stride/$sstride: their distance between consecutive columns n. Returns −1, or the first real
  ;; column whose block holds NaN or ±Inf (nothing reliable is written for it; the caller reports it).
  (func (export "symStrip") (param $strip i32) (param $N4 i32) (param $N i32) (param $rows i32) (param $bits i32)
        (param $blob i32) (param $dst i32) (param $stride i32) (param $sdst i32) (param $sstride i32) (param $acc i32)
        (result i32)
    (local $n0 i32) (local $col i32) (local $rowStride i32) (local $i i32) (local $p i32) (local $j i32) (local $redo i32)
    (local $mid f64) (local $v v128) (local $ab v128) (local $gt v128) (local $am v128) (local $mv v128)
    (local $xa v128) (local $xb v128) (local $xxA v128) (local $xxB v128)
    (local $i1A v128) (local $i1B v128) (local $i2A v128) (local $i2B v128) (local $lo v128) (local $hi v128)
    (local $c v128) (local $xc1A v128) (local $xc1B v128) (local $cc1A v128) (local $cc1B v128)
    (local $xc2A v128) (local $xc2B v128) (local $cc2A v128) (local $cc2B v128)
    (local.set $mid (f64.convert_i32_s (i32.shl (i32.const 1) (i32.sub (local.get $bits) (i32.const 1)))))
    (local.set $lo (f64x2.splat (f64.neg (local.get $mid))))
    (local.set $hi (f64x2.splat (f64.sub (f64.convert_i32_s (i32.sub (i32.shl (i32.const 1) (local.get $bits)) (i32.const 1))) (local.get $mid))))
    (local.set $rowStride (i32.shl (local.get $N4) (i32.const 2)))
    (block $groups
      (loop $group
        (br_if $groups (i32.ge_u (local.get $n0) (local.get $N4)))
        (local.set $col (i32.add (local.get $strip) (i32.shl (local.get $n0) (i32.const 2))))
        ;; Pass 1: Σx² and max|x| taken on the bit patterns (sign cleared, int32 order = magnitude
        ;; order); a strictly greater magnitude replaces m, so m is the FIRST value of largest
        ;; magnitude, as the JS kernel (and MLAS) pick it.
        (local.set $am (v128.const i32x4 0 0 0 0))
        (local.set $mv (v128.const i32x4 0 0 0 0))
        (local.set $xxA (v128.const i32x4 0 0 0 0))
        (local.set $xxB (v128.const i32x4 0 0 0 0))
        (local.set $p (local.get $col))
        (local.set $i (i32.const 0))
        (block $d1
          (loop $r1
            (br_if $d1 (i32.ge_u (local.get $i) (local.get $rows)))
            (local.set $v (v128.load (local.get $p)))
            (local.set $ab (v128.and (local.get $v) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)))
            (local.set $gt (i32x4.gt_s (local.get $ab) (local.get $am)))
            (local.set $am (v128.bitselect (local.get $ab) (local.get $am) (local.get $gt)))
            (local.set $mv (v128.bitselect (local.get $v) (local.get $mv) (local.get $gt)))
            (local.set $xa (f64x2.promote_low_f32x4 (local.get $v)))
            (local.set $xb (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v))))
            (local.set $xxA (f64x2.add (local.get $xxA) (f64x2.mul (local.get $xa) (local.get $xa))))
            (local.set $xxB (f64x2.add (local.get $xxB) (f64x2.mul (local.get $xb) (local.get $xb))))
            (local.set $p (i32.add (local.get $p) (local.get $rowStride)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $r1)))
        (v128.store offset=16 (local.get $acc) (local.get $xxA))
        (v128.store offset=32 (local.get $acc) (local.get $xxB))
        (v128.store offset=48 (local.get $acc) (local.get $mv))
        (local.set $j (i32.const 0))
        (block $d2
          (loop $l2
            (br_if $d2 (i32.ge_u (local.get $j) (i32.const 4)))
            (if (i32.and
                  (i32.lt_u (i32.add (local.get $n0) (local.get $j)) (local.get $N))
                  (i32.eqz (f64.lt (f64.load offset=16 (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3)))) (f64.const inf))))
              (then (return (i32.add (local.get $n0) (local.get $j)))))
            (call $starts (local.get $acc) (local.get $j) (local.get $mid))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $l2)))
        ;; Pass 2: Σx·c and Σc² at both start scales.
        (local.set $i1A (v128.load offset=192 (local.get $acc)))
        (local.set $i1B (v128.load offset=208 (local.get $acc)))
        (local.set $i2A (v128.load offset=224 (local.get $acc)))
        (local.set $i2B (v128.load offset=240 (local.get $acc)))
        (local.set $xc1A (v128.const i32x4 0 0 0 0)) (local.set $xc1B (v128.const i32x4 0 0 0 0))
        (local.set $cc1A (v128.const i32x4 0 0 0 0)) (local.set $cc1B (v128.const i32x4 0 0 0 0))
        (local.set $xc2A (v128.const i32x4 0 0 0 0)) (local.set $xc2B (v128.const i32x4 0 0 0 0))
        (local.set $cc2A (v128.const i32x4 0 0 0 0)) (local.set $cc2B (v128.const i32x4 0 0 0 0))
        (local.set $p (local.get $col))
        (local.set $i (i32.const 0))
        (block $d3
          (loop $r3
            (br_if $d3 (i32.ge_u (local.get $i) (local.get $rows)))
            (local.set $v (v128.load (local.get $p)))
            (local.set $xa (f64x2.promote_low_f32x4 (local.get $v)))
            (local.set $xb (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v))))
            (local.set $c (f64x2.pmin (f64x2.pmax (f64x2.nearest (f64x2.mul (local.get $xa) (local.get $i1A))) (local.get $lo)) (local.get $hi)))
            (local.set $xc1A (f64x2.add (local.get $xc1A) (f64x2.mul (local.get $xa) (local.get $c))))
            (local.set $cc1A (f64x2.add (local.get $cc1A) (f64x2.mul (local.get $c) (local.get $c))))
            (local.set $c (f64x2.pmin (f64x2.pmax (f64x2.nearest (f64x2.mul (local.get $xa) (local.get $i2A))) (local.get $lo)) (local.get $hi)))
            (local.set $xc2A (f64x2.add (local.get $xc2A) (f64x2.mul (local.get $xa) (local.get $c))))
            (local.set $cc2A (f64x2.add (local.get $cc2A) (f64x2.mul (local.get $c) (local.get $c))))
            (local.set $c (f64x2.pmin (f64x2.pmax (f64x2.nearest (f64x2.mul (local.get $xb) (local.get $i1B))) (local.get $lo)) (local.get $hi)))
            (local.set $xc1B (f64x2.add (local.get $xc1B) (f64x2.mul (local.get $xb) (local.get $c))))
            (local.set $cc1B (f64x2.add (local.get $cc1B) (f64x2.mul (local.get $c) (local.get $c))))
            (local.set $c (f64x2.pmin (f64x2.pmax (f64x2.nearest (f64x2.mul (local.get $xb) (local.get $i2B))) (local.get $lo)) (local.get $hi)))
            (local.set $xc2B (f64x2.add (local.get $xc2B) (f64x2.mul (local.get $xb) (local.get $c))))
            (local.set $cc2B (f64x2.add (local.get $cc2B) (f64x2.mul (local.get $c) (local.get $c))))
            (local.set $p (i32.add (local.get $p) (local.get $rowStride)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $r3)))
        (v128.store offset=64 (local.get $acc) (local.get $xc1A))
        (v128.store offset=80 (local.get $acc) (local.get $xc1B))
        (v128.store offset=96 (local.get $acc) (local.get $cc1A))
        (v128.store offset=112 (local.get $acc) (local.get $cc1B))
        (v128.store offset=128 (local.get $acc) (local.get $xc2A))
        (v128.store offset=144 (local.get $acc) (local.get $xc2B))
        (v128.store offset=160 (local.get $acc) (local.get $cc2A))
        (v128.store offset=176 (local.get $acc) (local.get $cc2B))
        (call $choose (local.get $acc) (i32.const 0))
        (call $choose (local.get $acc) (i32.const 1))
        (call $choose (local.get $acc) (i32.const 2))
        (call $choose (local.get $acc) (i32.const 3))
        ;; Pass 3: re-round at s1, keeping (packing) the codes; then the last least-squares step.
        (call $codes (local.get $col) (local.get $rowStride) (local.get $rows) (local.get $bits) (local.get $blob)
          (i32.add (local.get $dst) (i32.mul (local.get $n0) (local.get $stride))) (local.get $stride) (local.get $acc))
        (local.set $redo (i32.const 0))
        (local.set $j (i32.const 0))
        (block $d4
          (loop $l4
            (br_if $d4 (i32.ge_u (local.get $j) (i32.const 4)))
            (local.set $redo (i32.or (local.get $redo)
              (call $finish (local.get $acc) (local.get $j)
                (i32.add (local.get $sdst) (i32.mul (i32.add (local.get $n0) (local.get $j)) (local.get $sstride)))
                (i32.lt_u (i32.add (local.get $n0) (local.get $j)) (local.get $N)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $l4)))
        ;; Some block kept its start scale: re-round the group (the other lanes at s1 reproduce their codes).
        (if (local.get $redo)
          (then (call $codes (local.get $col) (local.get $rowStride) (local.get $rows) (local.get $bits) (local.get $blob)
            (i32.add (local.get $dst) (i32.mul (local.get $n0) (local.get $stride))) (local.get $stride) (local.get $acc))))
        (local.set $n0 (i32.add (local.get $n0) (i32.const 4)))
        (br $group)))
    (i32.const -1))
)
