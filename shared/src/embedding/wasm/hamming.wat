;; Hamming kernels for consensus clustering (the source of hamming.wasm.gen.ts: `bun run build:wasm`).
;;
;; Layout (the caller places everything, all offsets in bytes, 16-byte aligned):
;;   rows   n rows of `vecs` 16-byte vectors each, zero-padded (padding bits are zero on both sides
;;          of a XOR and never count);
;;   dist   n×n u16, row-major: d(i, j) at dist + 2(i·n + j);
;;   sizes  n u32; mask n u16 (0 or 0xffff); sums n u32.
;; Every function is pure over its arguments and the memory it is given; there is no other state.
;; Distances fit u16 because the caller allows at most 65535 bits a row (4095 vectors).
(module
  (memory (export "memory") 1)

  ;; d(i, j) for all i < j, written to both (i, j) and (j, i); zero diagonal.
  ;; v128.xor, then i8x16.popcnt summed in byte lanes over chunks of at most 31 vectors (31 × 8 = 248
  ;; fits a byte), widened to i16x8 after each chunk and to i32x4 once a pair.
  (func (export "distances_i8x16") (param $rows i32) (param $n i32) (param $vecs i32) (param $dist i32)
    (local $i i32) (local $j i32) (local $a i32) (local $b i32) (local $k i32) (local $end i32)
    (local $rowBytes i32) (local $d i32) (local $acc8 v128) (local $acc16 v128) (local $acc32 v128)
    (local.set $rowBytes (i32.shl (local.get $vecs) (i32.const 4)))
    (block $doneI
      (loop $loopI
        (br_if $doneI (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store16
          (i32.add (local.get $dist)
            (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $i)) (i32.const 1)))
          (i32.const 0))
        (local.set $j (i32.add (local.get $i) (i32.const 1)))
        (block $doneJ
          (loop $loopJ
            (br_if $doneJ (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $a (i32.add (local.get $rows) (i32.mul (local.get $i) (local.get $rowBytes))))
            (local.set $b (i32.add (local.get $rows) (i32.mul (local.get $j) (local.get $rowBytes))))
            (local.set $acc16 (v128.const i64x2 0 0))
            (local.set $k (i32.const 0))
            (block $doneK
              (loop $loopK
                (br_if $doneK (i32.ge_u (local.get $k) (local.get $vecs)))
                (local.set $end
                  (select
                    (i32.add (local.get $k) (i32.const 31))
                    (local.get $vecs)
                    (i32.lt_u (i32.add (local.get $k) (i32.const 31)) (local.get $vecs))))
                (local.set $acc8 (v128.const i64x2 0 0))
                (loop $loopChunk
                  (local.set $acc8
                    (i8x16.add (local.get $acc8)
                      (i8x16.popcnt (v128.xor (v128.load (local.get $a)) (v128.load (local.get $b))))))
                  (local.set $a (i32.add (local.get $a) (i32.const 16)))
                  (local.set $b (i32.add (local.get $b) (i32.const 16)))
                  (local.set $k (i32.add (local.get $k) (i32.const 1)))
                  (br_if $loopChunk (i32.lt_u (local.get $k) (local.get $end))))
                (local.set $acc16
                  (i16x8.add (local.get $acc16) (i16x8.extadd_pairwise_i8x16_u (local.get $acc8))))
                (br $loopK)))
            (local.set $acc32 (i32x4.extadd_pairwise_i16x8_u (local.get $acc16)))
            (local.set $d
              (i32.add
                (i32.add (i32x4.extract_lane 0 (local.get $acc32)) (i32x4.extract_lane 1 (local.get $acc32)))
                (i32.add (i32x4.extract_lane 2 (local.get $acc32)) (i32x4.extract_lane 3 (local.get $acc32)))))
            (i32.store16
              (i32.add (local.get $dist)
                (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j)) (i32.const 1)))
              (local.get $d))
            (i32.store16
              (i32.add (local.get $dist)
                (i32.shl (i32.add (i32.mul (local.get $j) (local.get $n)) (local.get $i)) (i32.const 1)))
              (local.get $d))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $loopJ)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $loopI))))

  ;; The same matrix with i64.popcnt, which engines lower to one POPCNT on x86-64, where i8x16.popcnt is
  ;; a PSHUFB sequence; this kernel measured faster there (see shared/bench/consensus.bench.ts).
  ;; Fewer popcounts by a carry-save adder: the XORs of three vectors x, y, z give a sum s = x^y^z and a
  ;; carry c = (x&y)|((x^y)&z) with popcnt(x)+popcnt(y)+popcnt(z) = popcnt(s) + 2·popcnt(c), so every
  ;; three vectors cost four i64.popcnt instead of six (the logic runs in v128, the popcounts on the
  ;; lanes). Rows of 3, 4, 6 or 8 vectors (384, 512, 768, 1024 bits) take a specialised loop that holds
  ;; row i in locals; other widths the general loop.
  (func (export "distances_i64") (param $rows i32) (param $n i32) (param $vecs i32) (param $dist i32)
    (block $general
      (block $v8
        (block $v6
          (block $v4
            (block $v3
              (br_table $general $general $general $v3 $v4 $general $v6 $general $v8 $general
                (local.get $vecs)))
            (call $distances_i64_3 (local.get $rows) (local.get $n) (local.get $dist))
            (return))
          (call $distances_i64_4 (local.get $rows) (local.get $n) (local.get $dist))
          (return))
        (call $distances_i64_6 (local.get $rows) (local.get $n) (local.get $dist))
        (return))
      (call $distances_i64_8 (local.get $rows) (local.get $n) (local.get $dist))
      (return))
    (call $distances_i64_any (local.get $rows) (local.get $n) (local.get $vecs) (local.get $dist)))

  ;; Any width, zero included. Pointers advance: row i at $a, row j at $b, d(i, j) at $pij (up to
  ;; $pijEnd, the end of row i of the matrix), d(j, i) at $pji. Three vectors an iteration through the
  ;; carry-save adder ($ones, $twos), then the last vecs mod 3.
  (func $distances_i64_any (param $rows i32) (param $n i32) (param $vecs i32) (param $dist i32)
    (local $rowBytes i32) (local $a i32) (local $b i32) (local $diag i32)
    (local $pij i32) (local $pji i32) (local $n2 i32) (local $p i32) (local $q i32) (local $groupsEnd i32)
    (local $rowEnd i32) (local $i i32) (local $pijEnd i32) (local $ones i64) (local $twos i64)
    (local $x v128) (local $y v128) (local $z v128) (local $u v128) (local $s v128) (local $c v128)
    (local.set $rowBytes (i32.shl (local.get $vecs) (i32.const 4)))
    (local.set $a (local.get $rows))
    (local.set $diag (local.get $dist))
    (local.set $n2 (i32.shl (local.get $n) (i32.const 1)))
    (block $doneI
      (loop $loopI
        (br_if $doneI (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store16 (local.get $diag) (i32.const 0))
        (local.set $pijEnd
          (i32.add (local.get $dist) (i32.mul (i32.add (local.get $i) (i32.const 1)) (local.get $n2))))
        (local.set $groupsEnd
          (i32.add (local.get $a) (i32.mul (i32.div_u (local.get $vecs) (i32.const 3)) (i32.const 48))))
        (local.set $rowEnd (i32.add (local.get $a) (local.get $rowBytes)))
        (local.set $b (local.get $rowEnd))
        (local.set $pij (i32.add (local.get $diag) (i32.const 2)))
        (local.set $pji (i32.add (local.get $diag) (local.get $n2)))
        (block $doneJ
          (loop $loopJ
            (br_if $doneJ (i32.ge_u (local.get $pij) (local.get $pijEnd)))
            (local.set $p (local.get $a))
            (local.set $q (local.get $b))
            (local.set $ones (i64.const 0))
            (local.set $twos (i64.const 0))
            (block $doneK
              (loop $loopK
                (br_if $doneK (i32.ge_u (local.get $p) (local.get $groupsEnd)))
                (local.set $x (v128.xor (v128.load (local.get $p)) (v128.load (local.get $q))))
                (local.set $y (v128.xor (v128.load offset=16 (local.get $p)) (v128.load offset=16 (local.get $q))))
                (local.set $z (v128.xor (v128.load offset=32 (local.get $p)) (v128.load offset=32 (local.get $q))))
                (local.set $u (v128.xor (local.get $x) (local.get $y)))
                (local.set $s (v128.xor (local.get $u) (local.get $z)))
                (local.set $c
                  (v128.or (v128.and (local.get $x) (local.get $y)) (v128.and (local.get $u) (local.get $z))))
                (local.set $ones
                  (i64.add (local.get $ones)
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $s)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $s))))))
                (local.set $twos
                  (i64.add (local.get $twos)
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $c)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $c))))))
                (local.set $p (i32.add (local.get $p) (i32.const 48)))
                (local.set $q (i32.add (local.get $q) (i32.const 48)))
                (br $loopK)))
            (block $doneR
              (loop $loopR
                (br_if $doneR (i32.ge_u (local.get $p) (local.get $rowEnd)))
                (local.set $ones
                  (i64.add (local.get $ones)
                    (i64.add
                      (i64.popcnt (i64.xor (i64.load (local.get $p)) (i64.load (local.get $q))))
                      (i64.popcnt
                        (i64.xor (i64.load offset=8 (local.get $p)) (i64.load offset=8 (local.get $q)))))))
                (local.set $p (i32.add (local.get $p) (i32.const 16)))
                (local.set $q (i32.add (local.get $q) (i32.const 16)))
                (br $loopR)))
            (local.set $ones (i64.add (local.get $ones) (i64.shl (local.get $twos) (i64.const 1))))
            (i32.store16 (local.get $pij) (i32.wrap_i64 (local.get $ones)))
            (i32.store16 (local.get $pji) (i32.wrap_i64 (local.get $ones)))
            (local.set $b (i32.add (local.get $b) (local.get $rowBytes)))
            (local.set $pij (i32.add (local.get $pij) (i32.const 2)))
            (local.set $pji (i32.add (local.get $pji) (local.get $n2)))
            (br $loopJ)))
        (local.set $a (local.get $rowEnd))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (local.set $diag (i32.add (local.get $diag) (i32.add (local.get $n2) (i32.const 2))))
        (br $loopI))))

  ;; Rows of 3 vectors (384 bits).
  (func $distances_i64_3 (param $rows i32) (param $n i32) (param $dist i32)
    (local $a i32) (local $b i32) (local $end i32) (local $diag i32) (local $pij i32) (local $pji i32)
    (local $n2 i32) (local $d i64) (local $x v128) (local $y v128) (local $z v128) (local $u v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $s0 v128) (local $c0 v128)
    (local.set $a (local.get $rows))
    (local.set $end (i32.add (local.get $rows) (i32.mul (local.get $n) (i32.const 48))))
    (local.set $diag (local.get $dist))
    (local.set $n2 (i32.shl (local.get $n) (i32.const 1)))
    (block $doneI
      (loop $loopI
        (br_if $doneI (i32.ge_u (local.get $a) (local.get $end)))
        (i32.store16 (local.get $diag) (i32.const 0))
        (local.set $a0 (v128.load offset=0 (local.get $a)))
        (local.set $a1 (v128.load offset=16 (local.get $a)))
        (local.set $a2 (v128.load offset=32 (local.get $a)))
        (local.set $b (i32.add (local.get $a) (i32.const 48)))
        (local.set $pij (i32.add (local.get $diag) (i32.const 2)))
        (local.set $pji (i32.add (local.get $diag) (local.get $n2)))
        (block $doneJ
          (loop $loopJ
            (br_if $doneJ (i32.ge_u (local.get $b) (local.get $end)))
            (local.set $x (v128.xor (local.get $a0) (v128.load offset=0 (local.get $b))))
            (local.set $y (v128.xor (local.get $a1) (v128.load offset=16 (local.get $b))))
            (local.set $z (v128.xor (local.get $a2) (v128.load offset=32 (local.get $b))))
            (local.set $u (v128.xor (local.get $x) (local.get $y)))
            (local.set $s0 (v128.xor (local.get $u) (local.get $z)))
            (local.set $c0
              (v128.or (v128.and (local.get $x) (local.get $y)) (v128.and (local.get $u) (local.get $z))))
            (local.set $d
              (i64.add
                (i64.add
                  (i64.popcnt (i64x2.extract_lane 0 (local.get $s0)))
                  (i64.popcnt (i64x2.extract_lane 1 (local.get $s0))))
                (i64.shl
                  (i64.add
                    (i64.popcnt (i64x2.extract_lane 0 (local.get $c0)))
                    (i64.popcnt (i64x2.extract_lane 1 (local.get $c0))))
                  (i64.const 1))))
            (i32.store16 (local.get $pij) (i32.wrap_i64 (local.get $d)))
            (i32.store16 (local.get $pji) (i32.wrap_i64 (local.get $d)))
            (local.set $b (i32.add (local.get $b) (i32.const 48)))
            (local.set $pij (i32.add (local.get $pij) (i32.const 2)))
            (local.set $pji (i32.add (local.get $pji) (local.get $n2)))
            (br $loopJ)))
        (local.set $a (i32.add (local.get $a) (i32.const 48)))
        (local.set $diag (i32.add (local.get $diag) (i32.add (local.get $n2) (i32.const 2))))
        (br $loopI))))

  ;; Rows of 4 vectors (512 bits).
  (func $distances_i64_4 (param $rows i32) (param $n i32) (param $dist i32)
    (local $a i32) (local $b i32) (local $end i32) (local $diag i32) (local $pij i32) (local $pji i32)
    (local $n2 i32) (local $d i64) (local $x v128) (local $y v128) (local $z v128) (local $u v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $s0 v128) (local $c0 v128)
    (local $r0 v128)
    (local.set $a (local.get $rows))
    (local.set $end (i32.add (local.get $rows) (i32.mul (local.get $n) (i32.const 64))))
    (local.set $diag (local.get $dist))
    (local.set $n2 (i32.shl (local.get $n) (i32.const 1)))
    (block $doneI
      (loop $loopI
        (br_if $doneI (i32.ge_u (local.get $a) (local.get $end)))
        (i32.store16 (local.get $diag) (i32.const 0))
        (local.set $a0 (v128.load offset=0 (local.get $a)))
        (local.set $a1 (v128.load offset=16 (local.get $a)))
        (local.set $a2 (v128.load offset=32 (local.get $a)))
        (local.set $a3 (v128.load offset=48 (local.get $a)))
        (local.set $b (i32.add (local.get $a) (i32.const 64)))
        (local.set $pij (i32.add (local.get $diag) (i32.const 2)))
        (local.set $pji (i32.add (local.get $diag) (local.get $n2)))
        (block $doneJ
          (loop $loopJ
            (br_if $doneJ (i32.ge_u (local.get $b) (local.get $end)))
            (local.set $x (v128.xor (local.get $a0) (v128.load offset=0 (local.get $b))))
            (local.set $y (v128.xor (local.get $a1) (v128.load offset=16 (local.get $b))))
            (local.set $z (v128.xor (local.get $a2) (v128.load offset=32 (local.get $b))))
            (local.set $u (v128.xor (local.get $x) (local.get $y)))
            (local.set $s0 (v128.xor (local.get $u) (local.get $z)))
            (local.set $c0
              (v128.or (v128.and (local.get $x) (local.get $y)) (v128.and (local.get $u) (local.get $z))))
            (local.set $r0 (v128.xor (local.get $a3) (v128.load offset=48 (local.get $b))))
            (local.set $d
              (i64.add
                (i64.add
                  (i64.add
                    (i64.popcnt (i64x2.extract_lane 0 (local.get $s0)))
                    (i64.popcnt (i64x2.extract_lane 1 (local.get $s0))))
                  (i64.add
                    (i64.popcnt (i64x2.extract_lane 0 (local.get $r0)))
                    (i64.popcnt (i64x2.extract_lane 1 (local.get $r0)))))
                (i64.shl
                  (i64.add
                    (i64.popcnt (i64x2.extract_lane 0 (local.get $c0)))
                    (i64.popcnt (i64x2.extract_lane 1 (local.get $c0))))
                  (i64.const 1))))
            (i32.store16 (local.get $pij) (i32.wrap_i64 (local.get $d)))
            (i32.store16 (local.get $pji) (i32.wrap_i64 (local.get $d)))
            (local.set $b (i32.add (local.get $b) (i32.const 64)))
            (local.set $pij (i32.add (local.get $pij) (i32.const 2)))
            (local.set $pji (i32.add (local.get $pji) (local.get $n2)))
            (br $loopJ)))
        (local.set $a (i32.add (local.get $a) (i32.const 64)))
        (local.set $diag (i32.add (local.get $diag) (i32.add (local.get $n2) (i32.const 2))))
        (br $loopI))))

  ;; Rows of 6 vectors (768 bits).
  (func $distances_i64_6 (param $rows i32) (param $n i32) (param $dist i32)
    (local $a i32) (local $b i32) (local $end i32) (local $diag i32) (local $pij i32) (local $pji i32)
    (local $n2 i32) (local $d i64) (local $x v128) (local $y v128) (local $z v128) (local $u v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $a5 v128)
    (local $s0 v128) (local $c0 v128) (local $s1 v128) (local $c1 v128)
    (local.set $a (local.get $rows))
    (local.set $end (i32.add (local.get $rows) (i32.mul (local.get $n) (i32.const 96))))
    (local.set $diag (local.get $dist))
    (local.set $n2 (i32.shl (local.get $n) (i32.const 1)))
    (block $doneI
      (loop $loopI
        (br_if $doneI (i32.ge_u (local.get $a) (local.get $end)))
        (i32.store16 (local.get $diag) (i32.const 0))
        (local.set $a0 (v128.load offset=0 (local.get $a)))
        (local.set $a1 (v128.load offset=16 (local.get $a)))
        (local.set $a2 (v128.load offset=32 (local.get $a)))
        (local.set $a3 (v128.load offset=48 (local.get $a)))
        (local.set $a4 (v128.load offset=64 (local.get $a)))
        (local.set $a5 (v128.load offset=80 (local.get $a)))
        (local.set $b (i32.add (local.get $a) (i32.const 96)))
        (local.set $pij (i32.add (local.get $diag) (i32.const 2)))
        (local.set $pji (i32.add (local.get $diag) (local.get $n2)))
        (block $doneJ
          (loop $loopJ
            (br_if $doneJ (i32.ge_u (local.get $b) (local.get $end)))
            (local.set $x (v128.xor (local.get $a0) (v128.load offset=0 (local.get $b))))
            (local.set $y (v128.xor (local.get $a1) (v128.load offset=16 (local.get $b))))
            (local.set $z (v128.xor (local.get $a2) (v128.load offset=32 (local.get $b))))
            (local.set $u (v128.xor (local.get $x) (local.get $y)))
            (local.set $s0 (v128.xor (local.get $u) (local.get $z)))
            (local.set $c0
              (v128.or (v128.and (local.get $x) (local.get $y)) (v128.and (local.get $u) (local.get $z))))
            (local.set $x (v128.xor (local.get $a3) (v128.load offset=48 (local.get $b))))
            (local.set $y (v128.xor (local.get $a4) (v128.load offset=64 (local.get $b))))
            (local.set $z (v128.xor (local.get $a5) (v128.load offset=80 (local.get $b))))
            (local.set $u (v128.xor (local.get $x) (local.get $y)))
            (local.set $s1 (v128.xor (local.get $u) (local.get $z)))
            (local.set $c1
              (v128.or (v128.and (local.get $x) (local.get $y)) (v128.and (local.get $u) (local.get $z))))
            (local.set $d
              (i64.add
                (i64.add
                  (i64.add
                    (i64.popcnt (i64x2.extract_lane 0 (local.get $s0)))
                    (i64.popcnt (i64x2.extract_lane 1 (local.get $s0))))
                  (i64.add
                    (i64.popcnt (i64x2.extract_lane 0 (local.get $s1)))
                    (i64.popcnt (i64x2.extract_lane 1 (local.get $s1)))))
                (i64.shl
                  (i64.add
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $c0)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $c0))))
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $c1)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $c1)))))
                  (i64.const 1))))
            (i32.store16 (local.get $pij) (i32.wrap_i64 (local.get $d)))
            (i32.store16 (local.get $pji) (i32.wrap_i64 (local.get $d)))
            (local.set $b (i32.add (local.get $b) (i32.const 96)))
            (local.set $pij (i32.add (local.get $pij) (i32.const 2)))
            (local.set $pji (i32.add (local.get $pji) (local.get $n2)))
            (br $loopJ)))
        (local.set $a (i32.add (local.get $a) (i32.const 96)))
        (local.set $diag (i32.add (local.get $diag) (i32.add (local.get $n2) (i32.const 2))))
        (br $loopI))))

  ;; Rows of 8 vectors (1024 bits).
  (func $distances_i64_8 (param $rows i32) (param $n i32) (param $dist i32)
    (local $a i32) (local $b i32) (local $end i32) (local $diag i32) (local $pij i32) (local $pji i32)
    (local $n2 i32) (local $d i64) (local $x v128) (local $y v128) (local $z v128) (local $u v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $a5 v128)
    (local $a6 v128) (local $a7 v128) (local $s0 v128) (local $c0 v128) (local $s1 v128) (local $c1 v128)
    (local $r0 v128) (local $r1 v128)
    (local.set $a (local.get $rows))
    (local.set $end (i32.add (local.get $rows) (i32.mul (local.get $n) (i32.const 128))))
    (local.set $diag (local.get $dist))
    (local.set $n2 (i32.shl (local.get $n) (i32.const 1)))
    (block $doneI
      (loop $loopI
        (br_if $doneI (i32.ge_u (local.get $a) (local.get $end)))
        (i32.store16 (local.get $diag) (i32.const 0))
        (local.set $a0 (v128.load offset=0 (local.get $a)))
        (local.set $a1 (v128.load offset=16 (local.get $a)))
        (local.set $a2 (v128.load offset=32 (local.get $a)))
        (local.set $a3 (v128.load offset=48 (local.get $a)))
        (local.set $a4 (v128.load offset=64 (local.get $a)))
        (local.set $a5 (v128.load offset=80 (local.get $a)))
        (local.set $a6 (v128.load offset=96 (local.get $a)))
        (local.set $a7 (v128.load offset=112 (local.get $a)))
        (local.set $b (i32.add (local.get $a) (i32.const 128)))
        (local.set $pij (i32.add (local.get $diag) (i32.const 2)))
        (local.set $pji (i32.add (local.get $diag) (local.get $n2)))
        (block $doneJ
          (loop $loopJ
            (br_if $doneJ (i32.ge_u (local.get $b) (local.get $end)))
            (local.set $x (v128.xor (local.get $a0) (v128.load offset=0 (local.get $b))))
            (local.set $y (v128.xor (local.get $a1) (v128.load offset=16 (local.get $b))))
            (local.set $z (v128.xor (local.get $a2) (v128.load offset=32 (local.get $b))))
            (local.set $u (v128.xor (local.get $x) (local.get $y)))
            (local.set $s0 (v128.xor (local.get $u) (local.get $z)))
            (local.set $c0
              (v128.or (v128.and (local.get $x) (local.get $y)) (v128.and (local.get $u) (local.get $z))))
            (local.set $x (v128.xor (local.get $a3) (v128.load offset=48 (local.get $b))))
            (local.set $y (v128.xor (local.get $a4) (v128.load offset=64 (local.get $b))))
            (local.set $z (v128.xor (local.get $a5) (v128.load offset=80 (local.get $b))))
            (local.set $u (v128.xor (local.get $x) (local.get $y)))
            (local.set $s1 (v128.xor (local.get $u) (local.get $z)))
            (local.set $c1
              (v128.or (v128.and (local.get $x) (local.get $y)) (v128.and (local.get $u) (local.get $z))))
            (local.set $r0 (v128.xor (local.get $a6) (v128.load offset=96 (local.get $b))))
            (local.set $r1 (v128.xor (local.get $a7) (v128.load offset=112 (local.get $b))))
            (local.set $d
              (i64.add
                (i64.add
                  (i64.add
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $s0)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $s0))))
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $s1)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $s1)))))
                  (i64.add
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $r0)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $r0))))
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $r1)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $r1))))))
                (i64.shl
                  (i64.add
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $c0)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $c0))))
                    (i64.add
                      (i64.popcnt (i64x2.extract_lane 0 (local.get $c1)))
                      (i64.popcnt (i64x2.extract_lane 1 (local.get $c1)))))
                  (i64.const 1))))
            (i32.store16 (local.get $pij) (i32.wrap_i64 (local.get $d)))
            (i32.store16 (local.get $pji) (i32.wrap_i64 (local.get $d)))
            (local.set $b (i32.add (local.get $b) (i32.const 128)))
            (local.set $pij (i32.add (local.get $pij) (i32.const 2)))
            (local.set $pji (i32.add (local.get $pji) (local.get $n2)))
            (br $loopJ)))
        (local.set $a (i32.add (local.get $a) (i32.const 128)))
        (local.set $diag (i32.add (local.get $diag) (i32.add (local.get $n2) (i32.const 2))))
        (br $loopI))))

  ;; sizes[i] = #{j : d(i, j) <= t}, t in [0, 65535]. Eight entries a step: i16x8.le_u is -1 where
  ;; d <= t, subtracted from i16x8 counters (each at most n/8); the last n mod 8 entries one by one.
  (func (export "ball_sizes") (param $dist i32) (param $n i32) (param $t i32) (param $sizes i32)
    (local $i i32) (local $p i32) (local $vecEnd i32) (local $end i32) (local $c i32)
    (local $tv v128) (local $acc v128)
    (local.set $tv (i16x8.splat (local.get $t)))
    (local.set $p (local.get $dist))
    (block $doneI
      (loop $loopI
        (br_if $doneI (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $vecEnd
          (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 1))))
        (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 1))))
        (local.set $acc (v128.const i64x2 0 0))
        (block $doneV
          (loop $loopV
            (br_if $doneV (i32.ge_u (local.get $p) (local.get $vecEnd)))
            (local.set $acc
              (i16x8.sub (local.get $acc) (i16x8.le_u (v128.load (local.get $p)) (local.get $tv))))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br $loopV)))
        (local.set $acc (i32x4.extadd_pairwise_i16x8_u (local.get $acc)))
        (local.set $c
          (i32.add
            (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
            (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
        (block $doneS
          (loop $loopS
            (br_if $doneS (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $c (i32.add (local.get $c) (i32.le_u (i32.load16_u (local.get $p)) (local.get $t))))
            (local.set $p (i32.add (local.get $p) (i32.const 2)))
            (br $loopS)))
        (i32.store (i32.add (local.get $sizes) (i32.shl (local.get $i) (i32.const 2))) (local.get $c))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $loopI))))

  ;; For each row i with mask[i] set: sums[i] = Σ_j d(i, j) & mask[j], i.e. the sum of distances to the
  ;; masked rows. Rows without the mask are left untouched. i32x4 lanes hold at most n/4 × 65535.
  (func (export "ball_sums") (param $dist i32) (param $n i32) (param $mask i32) (param $sums i32)
    (local $i i32) (local $p i32) (local $m i32) (local $vecEnd i32) (local $end i32) (local $s i32)
    (local $acc v128)
    (block $doneI
      (loop $loopI
        (br_if $doneI (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.load16_u (i32.add (local.get $mask) (i32.shl (local.get $i) (i32.const 1))))
          (then
            (local.set $p
              (i32.add (local.get $dist) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 1))))
            (local.set $m (local.get $mask))
            (local.set $vecEnd
              (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 1))))
            (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 1))))
            (local.set $acc (v128.const i64x2 0 0))
            (block $doneV
              (loop $loopV
                (br_if $doneV (i32.ge_u (local.get $p) (local.get $vecEnd)))
                (local.set $acc
                  (i32x4.add (local.get $acc)
                    (i32x4.extadd_pairwise_i16x8_u
                      (v128.and (v128.load (local.get $p)) (v128.load (local.get $m))))))
                (local.set $p (i32.add (local.get $p) (i32.const 16)))
                (local.set $m (i32.add (local.get $m) (i32.const 16)))
                (br $loopV)))
            (local.set $s
              (i32.add
                (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
                (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
            (block $doneS
              (loop $loopS
                (br_if $doneS (i32.ge_u (local.get $p) (local.get $end)))
                (local.set $s
                  (i32.add (local.get $s)
                    (i32.and (i32.load16_u (local.get $p)) (i32.load16_u (local.get $m)))))
                (local.set $p (i32.add (local.get $p) (i32.const 2)))
                (local.set $m (i32.add (local.get $m) (i32.const 2)))
                (br $loopS)))
            (i32.store (i32.add (local.get $sums) (i32.shl (local.get $i) (i32.const 2))) (local.get $s))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $loopI))))
)
