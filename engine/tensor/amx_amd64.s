//go:build linux

#include "textflag.h"

// AMX instructions, which the Go assembler does not know, by their encodings
// (VEX.128.0F38.W0; tiles: 0 the sums C, 1 the weights A, 2 the activations B).
#define LDTILECFG_AX    BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0x00
#define TILERELEASE     BYTE $0xC4; BYTE $0xE2; BYTE $0x78; BYTE $0x49; BYTE $0xC0
#define TILEZERO_T0     BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x49; BYTE $0xC0
// tileloadd tmm1, [AX+BX]
#define TILELOADD_T1_AX_BX BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x0C; BYTE $0x18
// tileloadd tmm2, [DI+DX]
#define TILELOADD_T2_DI_DX BYTE $0xC4; BYTE $0xE2; BYTE $0x7B; BYTE $0x4B; BYTE $0x14; BYTE $0x17
// tdpbssd tmm0, tmm1, tmm2
#define TDPBSSD_T0_T1_T2 BYTE $0xC4; BYTE $0xE2; BYTE $0x6B; BYTE $0x5E; BYTE $0xC1
// tilestored [CX+DX], tmm0
#define TILESTORED_CX_DX_T0 BYTE $0xC4; BYTE $0xE2; BYTE $0x7A; BYTE $0x4B; BYTE $0x04; BYTE $0x11

// Row m's block sums (16 vectors, in the stored tile) to float, times the
// row's block scale, times the vectors' block scales (Z18) into its sums.
#define ROW(m, ACC) \
	VCVTDQ2PS (64*m)(CX), Z19 \
	VMULPS.BCST (4*m)(R8), Z19, Z19 \
	VFMADD231PS Z18, Z19, ACC

// Prefetches 16 rows, BX apart from AX.
#define PREFETCH16 \
	PREFETCHT0 (AX) \
	PREFETCHT0 (AX)(BX*1) \
	PREFETCHT0 (AX)(BX*2) \
	PREFETCHT0 (AX)(BX*4) \
	PREFETCHT0 (AX)(BX*8) \
	ADDQ BX, AX \
	PREFETCHT0 (AX)(BX*2) \
	PREFETCHT0 (AX)(BX*4) \
	PREFETCHT0 (AX)(BX*8) \
	ADDQ BX, AX \
	PREFETCHT0 (AX)(BX*4) \
	PREFETCHT0 (AX)(BX*8) \
	ADDQ BX, AX \
	PREFETCHT0 (AX)(BX*4) \
	PREFETCHT0 (AX)(BX*8) \
	ADDQ BX, AX \
	PREFETCHT0 (AX)(BX*8) \
	ADDQ BX, AX \
	PREFETCHT0 (AX)(BX*8) \
	ADDQ BX, AX \
	PREFETCHT0 (AX)(BX*8) \
	ADDQ BX, AX \
	PREFETCHT0 (AX)(BX*8)

DATA iotaAMX<>+0(SB)/4, $0
DATA iotaAMX<>+4(SB)/4, $1
DATA iotaAMX<>+8(SB)/4, $2
DATA iotaAMX<>+12(SB)/4, $3
DATA iotaAMX<>+16(SB)/4, $4
DATA iotaAMX<>+20(SB)/4, $5
DATA iotaAMX<>+24(SB)/4, $6
DATA iotaAMX<>+28(SB)/4, $7
DATA iotaAMX<>+32(SB)/4, $8
DATA iotaAMX<>+36(SB)/4, $9
DATA iotaAMX<>+40(SB)/4, $10
DATA iotaAMX<>+44(SB)/4, $11
DATA iotaAMX<>+48(SB)/4, $12
DATA iotaAMX<>+52(SB)/4, $13
DATA iotaAMX<>+56(SB)/4, $14
DATA iotaAMX<>+60(SB)/4, $15
GLOBL iotaAMX<>(SB), RODATA|NOPTR, $64

// func q8_0AMX(cfg *[64]byte, w *byte, rowBytes, nb int, xs *int8, dx *float32, groups int, tmp *int32, ws *float32, out *float32, rows, n, m int)
//
// m ≤ 16 Q8_0 rows, rowBytes apart from w, against groups of 16 activation
// vectors (xs, dx: as amxBatch lays them out): row r against vector k of
// group g into out[(16g+k)·rows + r], for the n first vectors of the last
// group. Each block is one tdpbssd of the m rows' 32 quants by the 16
// vectors' (int32 sums, exact), stored to tmp (16×16 int32) and scaled in
// float32 as the other kernels do; the rows' f16 scales are gathered and
// converted into ws (16 a block) in the first group's pass.
TEXT ·q8_0AMX(SB), NOSPLIT, $0-104
	MOVQ cfg+0(FP), AX
	LDTILECFG_AX
	MOVQ w+8(FP), R11
	MOVQ rowBytes+16(FP), BX
	MOVQ xs+32(FP), DI
	MOVQ dx+40(FP), R10
	MOVQ groups+48(FP), R14
	MOVQ tmp+56(FP), CX
	MOVQ out+72(FP), R13
	MOVQ m+96(FP), R9
	MOVQ $64, DX
	// Rows' offsets for the scale gather (Z16, kept through the first
	// group), and the mask of m rows (K2).
	VPBROADCASTD BX, Z16
	VPMULLD iotaAMX<>(SB), Z16, Z16
	MOVL $1, AX
	MOVQ R9, R12
	SHLXL R12, AX, AX
	DECL AX
	KMOVW AX, K2

group:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	MOVQ R11, SI
	MOVQ nb+24(FP), R12
	MOVQ ws+64(FP), R8

block:
	// In the first group, the rows' block scales into ws: a dword gathered
	// at each row's block (its f16 scale in the low half), converted; and
	// the rows' data some blocks ahead prefetched, since this pass is the
	// first to touch them (the groups after find them in cache).
	CMPQ R14, groups+48(FP)
	JNE  scaled
	KMOVW K2, K1
	VPXORD Z17, Z17, Z17
	VPGATHERDD (SI)(Z16*1), K1, Z17
	VPMOVDW Z17, Y17
	VCVTPH2PS Y17, Z17
	VMOVUPS Z17, (R8)
	LEAQ 272(SI), AX
	PREFETCH16

scaled:
	TILEZERO_T0
	LEAQ 2(SI), AX
	TILELOADD_T1_AX_BX
	TILELOADD_T2_DI_DX
	TDPBSSD_T0_T1_T2
	TILESTORED_CX_DX_T0
	VMOVUPS (R10), Z18
	ROW(0, Z0)
	ROW(1, Z1)
	ROW(2, Z2)
	ROW(3, Z3)
	ROW(4, Z4)
	ROW(5, Z5)
	ROW(6, Z6)
	ROW(7, Z7)
	ROW(8, Z8)
	ROW(9, Z9)
	ROW(10, Z10)
	ROW(11, Z11)
	ROW(12, Z12)
	ROW(13, Z13)
	ROW(14, Z14)
	ROW(15, Z15)
	ADDQ $34, SI
	ADDQ $512, DI
	ADDQ $64, R10
	ADDQ $64, R8
	DECQ R12
	JNZ  block

	// Transpose the 16 rows × 16 vectors of sums to vectors × rows (Z0 to
	// Z15), so that each vector's results are one masked store of the m rows:
	// pairs of floats, then pairs of pairs, then 128-bit lanes twice.
	VUNPCKLPS Z1, Z0, Z16
	VUNPCKHPS Z1, Z0, Z17
	VUNPCKLPS Z3, Z2, Z18
	VUNPCKHPS Z3, Z2, Z19
	VUNPCKLPS Z5, Z4, Z20
	VUNPCKHPS Z5, Z4, Z21
	VUNPCKLPS Z7, Z6, Z22
	VUNPCKHPS Z7, Z6, Z23
	VUNPCKLPS Z9, Z8, Z24
	VUNPCKHPS Z9, Z8, Z25
	VUNPCKLPS Z11, Z10, Z26
	VUNPCKHPS Z11, Z10, Z27
	VUNPCKLPS Z13, Z12, Z28
	VUNPCKHPS Z13, Z12, Z29
	VUNPCKLPS Z15, Z14, Z30
	VUNPCKHPS Z15, Z14, Z31
	VUNPCKLPD Z18, Z16, Z0
	VUNPCKHPD Z18, Z16, Z1
	VUNPCKLPD Z19, Z17, Z2
	VUNPCKHPD Z19, Z17, Z3
	VUNPCKLPD Z22, Z20, Z4
	VUNPCKHPD Z22, Z20, Z5
	VUNPCKLPD Z23, Z21, Z6
	VUNPCKHPD Z23, Z21, Z7
	VUNPCKLPD Z26, Z24, Z8
	VUNPCKHPD Z26, Z24, Z9
	VUNPCKLPD Z27, Z25, Z10
	VUNPCKHPD Z27, Z25, Z11
	VUNPCKLPD Z30, Z28, Z12
	VUNPCKHPD Z30, Z28, Z13
	VUNPCKLPD Z31, Z29, Z14
	VUNPCKHPD Z31, Z29, Z15
	VSHUFF32X4 $0x88, Z4, Z0, Z16
	VSHUFF32X4 $0xDD, Z4, Z0, Z17
	VSHUFF32X4 $0x88, Z12, Z8, Z18
	VSHUFF32X4 $0xDD, Z12, Z8, Z19
	VSHUFF32X4 $0x88, Z5, Z1, Z20
	VSHUFF32X4 $0xDD, Z5, Z1, Z21
	VSHUFF32X4 $0x88, Z13, Z9, Z22
	VSHUFF32X4 $0xDD, Z13, Z9, Z23
	VSHUFF32X4 $0x88, Z6, Z2, Z24
	VSHUFF32X4 $0xDD, Z6, Z2, Z25
	VSHUFF32X4 $0x88, Z14, Z10, Z26
	VSHUFF32X4 $0xDD, Z14, Z10, Z27
	VSHUFF32X4 $0x88, Z7, Z3, Z28
	VSHUFF32X4 $0xDD, Z7, Z3, Z29
	VSHUFF32X4 $0x88, Z15, Z11, Z30
	VSHUFF32X4 $0xDD, Z15, Z11, Z31
	VSHUFF32X4 $0x88, Z18, Z16, Z0
	VSHUFF32X4 $0xDD, Z18, Z16, Z8
	VSHUFF32X4 $0x88, Z19, Z17, Z4
	VSHUFF32X4 $0xDD, Z19, Z17, Z12
	VSHUFF32X4 $0x88, Z22, Z20, Z1
	VSHUFF32X4 $0xDD, Z22, Z20, Z9
	VSHUFF32X4 $0x88, Z23, Z21, Z5
	VSHUFF32X4 $0xDD, Z23, Z21, Z13
	VSHUFF32X4 $0x88, Z26, Z24, Z2
	VSHUFF32X4 $0xDD, Z26, Z24, Z10
	VSHUFF32X4 $0x88, Z27, Z25, Z6
	VSHUFF32X4 $0xDD, Z27, Z25, Z14
	VSHUFF32X4 $0x88, Z30, Z28, Z3
	VSHUFF32X4 $0xDD, Z30, Z28, Z11
	VSHUFF32X4 $0x88, Z31, Z29, Z7
	VSHUFF32X4 $0xDD, Z31, Z29, Z15

	// Vector k's m results to out+k·rows: 16 vectors, or n in the last group.
	MOVQ $16, R12
	CMPQ R14, $1
	JNE  full
	MOVQ n+88(FP), R12

full:
	MOVQ rows+80(FP), AX
	SHLQ $2, AX
	MOVQ R13, DX
	VMOVUPS Z0, K2, (DX)
	CMPQ R12, $1
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z1, K2, (DX)
	CMPQ R12, $2
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z2, K2, (DX)
	CMPQ R12, $3
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z3, K2, (DX)
	CMPQ R12, $4
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z4, K2, (DX)
	CMPQ R12, $5
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z5, K2, (DX)
	CMPQ R12, $6
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z6, K2, (DX)
	CMPQ R12, $7
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z7, K2, (DX)
	CMPQ R12, $8
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z8, K2, (DX)
	CMPQ R12, $9
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z9, K2, (DX)
	CMPQ R12, $10
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z10, K2, (DX)
	CMPQ R12, $11
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z11, K2, (DX)
	CMPQ R12, $12
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z12, K2, (DX)
	CMPQ R12, $13
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z13, K2, (DX)
	CMPQ R12, $14
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z14, K2, (DX)
	CMPQ R12, $15
	JLE  stored
	ADDQ AX, DX
	VMOVUPS Z15, K2, (DX)

stored:
	MOVQ $64, DX
	MOVQ rows+80(FP), AX
	SHLQ $6, AX // 16 vectors of 4 bytes
	ADDQ AX, R13
	DECQ R14
	JNZ  group

	TILERELEASE
	VZEROUPPER
	RET
