#include "textflag.h"

// func quant32AVX512(x *float32, nb int, qs *int8, d *float32, sums *int16)
//
// quantizeBlock8 for nb blocks of 32 values with one sum each: the largest
// magnitude by clearing sign bits, d = amax/127 and id = 127/amax as scalar
// float32 divisions (as Go computes them), the quants rounded to nearest even
// by vcvtps2dq (the rounding mode Go leaves in MXCSR) and clamped to ±127.
TEXT ·quant32AVX512(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ qs+16(FP), DI
	MOVQ d+24(FP), R8
	MOVQ sums+32(FP), R9
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z31
	MOVL $127, AX
	VPBROADCASTD AX, Z30
	MOVL $-127, AX
	VPBROADCASTD AX, Z29
	MOVL $0x42fe0000, AX // 127.0
	VMOVD AX, X28
	VXORPS X27, X27, X27
	TESTQ CX, CX
	JZ    qdone

qloop:
	VMOVUPS 0(SI), Z0
	VMOVUPS 64(SI), Z1
	VPANDD  Z31, Z0, Z2
	VPANDD  Z31, Z1, Z3
	VMAXPS  Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VMAXPS  Y3, Y2, Y2
	VEXTRACTF128 $1, Y2, X3
	VMAXPS  X3, X2, X2
	VPERMILPS $0x4E, X2, X3
	VMAXPS  X3, X2, X2
	VPERMILPS $0xB1, X2, X3
	VMAXPS  X3, X2, X2
	VDIVSS  X28, X2, X4 // d = amax/127
	VMOVSS  X4, (R8)
	VUCOMISS X27, X2
	JNE     scale
	// An all-zero block: zero quants, sum and scale.
	VXORPS  X5, X5, X5
	JMP     quant

scale:
	VDIVSS  X2, X28, X5 // id = 127/amax

quant:
	VBROADCASTSS X5, Z5
	VMULPS  Z5, Z0, Z0
	VMULPS  Z5, Z1, Z1
	VCVTPS2DQ Z0, Z0
	VCVTPS2DQ Z1, Z1
	VPMAXSD Z29, Z0, Z0
	VPMINSD Z30, Z0, Z0
	VPMAXSD Z29, Z1, Z1
	VPMINSD Z30, Z1, Z1
	VPMOVDB Z0, 0(DI)
	VPMOVDB Z1, 16(DI)
	VPADDD  Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD  Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD  X1, X0, X0
	VPSHUFD $0x4E, X0, X1
	VPADDD  X1, X0, X0
	VPSHUFD $0xB1, X0, X1
	VPADDD  X1, X0, X0
	VMOVD   X0, AX
	MOVW    AX, (R9)
	ADDQ $128, SI
	ADDQ $32, DI
	ADDQ $4, R8
	ADDQ $2, R9
	DECQ CX
	JNZ  qloop

qdone:
	VZEROUPPER
	RET
