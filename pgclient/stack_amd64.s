#include "textflag.h"

// func fpWalk(skip int, pcs []uintptr) int
//
// fpWalk follows the frame pointer chain of the calling goroutine from its
// caller's frame, skipping skip return addresses and storing the next ones in
// pcs. It makes no calls, so the stack cannot move under it.
TEXT ·fpWalk(SB), NOSPLIT, $0-40
	MOVQ skip+0(FP), R8
	MOVQ pcs_base+8(FP), DI
	MOVQ pcs_len+16(FP), CX
	MOVQ BP, SI
	XORQ AX, AX

loop:
	TESTQ SI, SI
	JZ    done
	CMPQ  AX, CX
	JGE   done
	MOVQ  8(SI), DX // return address, one word above the saved frame pointer
	MOVQ  0(SI), SI // the caller's frame pointer
	TESTQ R8, R8
	JZ    store
	DECQ  R8
	JMP   loop

store:
	MOVQ DX, (DI)(AX*8)
	INCQ AX
	JMP  loop

done:
	MOVQ AX, ret+32(FP)
	RET
