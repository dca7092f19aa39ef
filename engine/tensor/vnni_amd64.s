#include "textflag.h"

// func cpuid(leaf, sub uint32) (a, b, c, d uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, a+8(FP)
	MOVL BX, b+12(FP)
	MOVL CX, c+16(FP)
	MOVL DX, d+20(FP)
	RET

// func xgetbv0() uint32
TEXT ·xgetbv0(SB), NOSPLIT, $0-4
	MOVL $0, CX
	XGETBV
	MOVL AX, ret+0(FP)
	RET

// Group j of a block for the four rows: its 4 weight bytes of each row are
// broadcast against the 8 vectors' 4 offset activation bytes in X.
#define GROUP(off, X, A0, A1, A2, A3) \
	VPDPBUSD.BCST off(SI), X, A0 \
	VPDPBUSD.BCST off(R12), X, A1 \
	VPDPBUSD.BCST off(R13), X, A2 \
	VPDPBUSD.BCST off(R14), X, A3

// Row r's block: the two integer sums added, converted, times the row's block
// scale, then times the vectors' block scales (Y20) into the row's sums.
#define FINISH(A, B, r, ACC) \
	VPADDD B, A, A \
	VCVTDQ2PS A, A \
	VMULPS.BCST (4*r)(R8), A, A \
	VFMADD231PS Y20, A, ACC

// The same for sixteen vectors in 512-bit registers (Z20: their scales).
#define FINISH16(A, B, r, ACC) \
	VPADDD B, A, A \
	VCVTDQ2PS A, A \
	VMULPS.BCST (4*r)(R8), A, A \
	VFMADD231PS Z20, A, ACC

// From rows in AX, lane in DX and n in CX: the vectors' offsets k·rows in
// Z21 (Y21 its lower half), lane·4 bytes in DX, and the mask of the n first
// vectors in AX.
#define SCATTER_SETUP \
	VPBROADCASTD AX, Z21 \
	VPMULLD iota16<>(SB), Z21, Z21 \
	SHLQ $2, DX \
	MOVL $1, AX \
	SHLL CX, AX \
	DECL AX

// One row's results to out, then the next row's base (a scatter clears its
// mask as it goes, so each takes a fresh one).
#define SCATTER(ACC, IDX) \
	KMOVW AX, K1 \
	VSCATTERDPS ACC, K1, (R11)(IDX*4) \
	ADDQ DX, R11

DATA iota16<>+0(SB)/4, $0
DATA iota16<>+4(SB)/4, $1
DATA iota16<>+8(SB)/4, $2
DATA iota16<>+12(SB)/4, $3
DATA iota16<>+16(SB)/4, $4
DATA iota16<>+20(SB)/4, $5
DATA iota16<>+24(SB)/4, $6
DATA iota16<>+28(SB)/4, $7
DATA iota16<>+32(SB)/4, $8
DATA iota16<>+36(SB)/4, $9
DATA iota16<>+40(SB)/4, $10
DATA iota16<>+44(SB)/4, $11
DATA iota16<>+48(SB)/4, $12
DATA iota16<>+52(SB)/4, $13
DATA iota16<>+56(SB)/4, $14
DATA iota16<>+60(SB)/4, $15
GLOBL iota16<>(SB), RODATA|NOPTR, $64

// The results are scattered straight into the product's output: row r's
// vector k to out[k·rows + r·lane], for the n first vectors only (the rest are
// padding).
//
// func q8_0t8VNNI(w *byte, stride, nb int, ws *float32, corr *int32, xu *byte, dx *float32, out *float32, rows, lane, n int)
TEXT ·q8_0t8VNNI(SB), NOSPLIT, $0-88
	MOVQ w+0(FP), SI
	MOVQ stride+8(FP), BX
	MOVQ nb+16(FP), CX
	MOVQ ws+24(FP), R8
	MOVQ corr+32(FP), R9
	MOVQ xu+40(FP), DI
	MOVQ dx+48(FP), R10
	MOVQ out+56(FP), R11
	LEAQ (SI)(BX*1), R12
	LEAQ (SI)(BX*2), R13
	LEAQ (R12)(BX*2), R14
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ CX, CX
	JZ    done

loop:
	VMOVDQU 0(DI), Y8
	VMOVDQU 32(DI), Y9
	VMOVDQU 64(DI), Y10
	VMOVDQU 96(DI), Y11
	VMOVDQU 128(DI), Y12
	VMOVDQU 160(DI), Y13
	VMOVDQU 192(DI), Y14
	VMOVDQU 224(DI), Y15
	// One sum starts at the row's correction (-128·Σw), the other at zero.
	VPBROADCASTD 0(R9), Y4
	VPBROADCASTD 4(R9), Y5
	VPBROADCASTD 8(R9), Y6
	VPBROADCASTD 12(R9), Y7
	VPXORD Y16, Y16, Y16
	VPXORD Y17, Y17, Y17
	VPXORD Y18, Y18, Y18
	VPXORD Y19, Y19, Y19
	GROUP(2, Y8, Y4, Y5, Y6, Y7)
	GROUP(6, Y9, Y16, Y17, Y18, Y19)
	GROUP(10, Y10, Y4, Y5, Y6, Y7)
	GROUP(14, Y11, Y16, Y17, Y18, Y19)
	GROUP(18, Y12, Y4, Y5, Y6, Y7)
	GROUP(22, Y13, Y16, Y17, Y18, Y19)
	GROUP(26, Y14, Y4, Y5, Y6, Y7)
	GROUP(30, Y15, Y16, Y17, Y18, Y19)
	VMOVUPS (R10), Y20
	FINISH(Y4, Y16, 0, Y0)
	FINISH(Y5, Y17, 1, Y1)
	FINISH(Y6, Y18, 2, Y2)
	FINISH(Y7, Y19, 3, Y3)
	ADDQ $34, SI
	ADDQ $34, R12
	ADDQ $34, R13
	ADDQ $34, R14
	ADDQ $256, DI
	ADDQ $16, R8
	ADDQ $16, R9
	ADDQ $32, R10
	DECQ CX
	JNZ  loop

done:
	MOVQ rows+64(FP), AX
	MOVQ lane+72(FP), DX
	MOVQ n+80(FP), CX
	SCATTER_SETUP
	SCATTER(Y0, Y21)
	SCATTER(Y1, Y21)
	SCATTER(Y2, Y21)
	SCATTER(Y3, Y21)
	VZEROUPPER
	RET

// q8_0t16VNNI is q8_0t8VNNI for sixteen vectors in 512-bit registers.
//
// func q8_0t16VNNI(w *byte, stride, nb int, ws *float32, corr *int32, xu *byte, dx *float32, out *float32, rows, lane, n int)
TEXT ·q8_0t16VNNI(SB), NOSPLIT, $0-88
	MOVQ w+0(FP), SI
	MOVQ stride+8(FP), BX
	MOVQ nb+16(FP), CX
	MOVQ ws+24(FP), R8
	MOVQ corr+32(FP), R9
	MOVQ xu+40(FP), DI
	MOVQ dx+48(FP), R10
	MOVQ out+56(FP), R11
	LEAQ (SI)(BX*1), R12
	LEAQ (SI)(BX*2), R13
	LEAQ (R12)(BX*2), R14
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	TESTQ CX, CX
	JZ    done16

loop16:
	VMOVDQU32 0(DI), Z8
	VMOVDQU32 64(DI), Z9
	VMOVDQU32 128(DI), Z10
	VMOVDQU32 192(DI), Z11
	VMOVDQU32 256(DI), Z12
	VMOVDQU32 320(DI), Z13
	VMOVDQU32 384(DI), Z14
	VMOVDQU32 448(DI), Z15
	// One sum starts at the row's correction (-128·Σw), the other at zero.
	VPBROADCASTD 0(R9), Z4
	VPBROADCASTD 4(R9), Z5
	VPBROADCASTD 8(R9), Z6
	VPBROADCASTD 12(R9), Z7
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	GROUP(2, Z8, Z4, Z5, Z6, Z7)
	GROUP(6, Z9, Z16, Z17, Z18, Z19)
	GROUP(10, Z10, Z4, Z5, Z6, Z7)
	GROUP(14, Z11, Z16, Z17, Z18, Z19)
	GROUP(18, Z12, Z4, Z5, Z6, Z7)
	GROUP(22, Z13, Z16, Z17, Z18, Z19)
	GROUP(26, Z14, Z4, Z5, Z6, Z7)
	GROUP(30, Z15, Z16, Z17, Z18, Z19)
	VMOVUPS (R10), Z20
	FINISH16(Z4, Z16, 0, Z0)
	FINISH16(Z5, Z17, 1, Z1)
	FINISH16(Z6, Z18, 2, Z2)
	FINISH16(Z7, Z19, 3, Z3)
	ADDQ $34, SI
	ADDQ $34, R12
	ADDQ $34, R13
	ADDQ $34, R14
	ADDQ $512, DI
	ADDQ $16, R8
	ADDQ $16, R9
	ADDQ $64, R10
	DECQ CX
	JNZ  loop16

done16:
	MOVQ rows+64(FP), AX
	MOVQ lane+72(FP), DX
	MOVQ n+80(FP), CX
	SCATTER_SETUP
	SCATTER(Z0, Z21)
	SCATTER(Z1, Z21)
	SCATTER(Z2, Z21)
	SCATTER(Z3, Z21)
	VZEROUPPER
	RET


// func rowCorr4AVX2(w *byte, stride, nb int, corr *int32)
// Each row block's bytes, offset to unsigned, are summed by vpsadbw into four
// 16-bit partial sums, the four rows' shifted into one register's words and
// reduced together: s = Σw + 4096, and −128·Σw = 524288 − 128·s.
TEXT ·rowCorr4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ stride+8(FP), BX
	MOVQ nb+16(FP), CX
	MOVQ corr+24(FP), DI
	LEAQ (SI)(BX*1), R12
	LEAQ (SI)(BX*2), R13
	LEAQ (R12)(BX*2), R14
	MOVL $0x80808080, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VPXOR Y14, Y14, Y14
	MOVL $524288, AX
	VMOVD AX, X13
	VPBROADCASTD X13, X13
	TESTQ CX, CX
	JZ    corrdone

corrloop:
	VPXOR   2(SI), Y15, Y0
	VPSADBW Y14, Y0, Y0
	VPXOR   2(R12), Y15, Y1
	VPSADBW Y14, Y1, Y1
	VPSLLQ  $16, Y1, Y1
	VPOR    Y1, Y0, Y0
	VPXOR   2(R13), Y15, Y2
	VPSADBW Y14, Y2, Y2
	VPSLLQ  $32, Y2, Y2
	VPOR    Y2, Y0, Y0
	VPXOR   2(R14), Y15, Y3
	VPSADBW Y14, Y3, Y3
	VPSLLQ  $48, Y3, Y3
	VPOR    Y3, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDW  X1, X0, X0
	VPSHUFD $0x4E, X0, X1
	VPADDW  X1, X0, X0
	VPMOVZXWD X0, X0
	VPSLLD  $7, X0, X0
	VPSUBD  X0, X13, X0
	VMOVDQU X0, (DI)
	ADDQ $34, SI
	ADDQ $34, R12
	ADDQ $34, R13
	ADDQ $34, R14
	ADDQ $16, DI
	DECQ CX
	JNZ  corrloop

corrdone:
	VZEROUPPER
	RET
