// The context switch for x86-64 (System V). See proc.c for the scheduler.
//
// A context is one word: the stack pointer at which the switched-out side
// left its callee-saved registers (rbp rbx r12-r15), its MXCSR and x87
// control word, and its return address. Everything else is dead across a
// call by the ABI, so a switch is a call that returns on another stack.
// Returning with ret, not pop+jmp, keeps the CPU's return-stack predictor
// paired with the call (measured: about twice as fast with real frames).
//
// Frame at the saved sp (16-byte aligned), lowest address first:
//   +0  mxcsr (4 bytes), x87 control word (2 bytes), pad
//   +8  r15, +16 r14, +24 r13, +32 r12, +40 rbx, +48 rbp, +56 return address
// proc.c builds the same frame for a new goroutine, with gort__ctx_entry as
// the return address and the start function in r12 (proc.c, ctx_init).
//
// The control words are loaded only when they differ from the current
// ones, which is almost never (a program rarely changes its rounding mode):
// fldcw and ldmxcsr stall the pipeline, and were half of a switch's samples
// (perf, the yield benchmark); a compare is nearly free. The compare leaves
// out MXCSR's six sticky exception flags, which any inexact operation sets:
// the flags are the M's, shared by the goroutines it runs (Go keeps no
// floating-point state per goroutine at all); the modes (rounding, masks,
// flush-to-zero) are each goroutine's own.

	.text

// void gort__ctx_switch(ctx_t *from, ctx_t *to)
	.globl	gort__ctx_switch
	.hidden	gort__ctx_switch
	.type	gort__ctx_switch, @function
gort__ctx_switch:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movl	(%rsp), %eax
	movzwl	4(%rsp), %r8d
	andl	$~0x3f, %eax
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	movl	(%rsp), %r9d
	andl	$~0x3f, %r9d
	cmpl	%r9d, %eax
	jne	1f
	cmpw	4(%rsp), %r8w
	jne	1f
2:	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
1:	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	jmp	2b
	.cfi_endproc
	.size	gort__ctx_switch, .-gort__ctx_switch

// void gort__ctx_switch_ontop(ctx_t *from, ctx_t *to, void (*fn)(void *), void *arg)
// As gort__ctx_switch, but runs fn(arg) on the target's stack, below its
// saved frame, before restoring it: fn sees the switched-out side saved
// completely, so it may publish it (unlock the lock that a waker takes).
// fn (gort's own steps; a ThreadSanitizer build's deferred signal handler
// aside) leaves the control words alone, so the words read
// before the switch are still the current ones after it: reading them again
// (stmxcsr waits for every SSE instruction in flight) was half the cost of
// this function's samples in the ping-pong benchmark.
	.globl	gort__ctx_switch_ontop
	.hidden	gort__ctx_switch_ontop
	.type	gort__ctx_switch_ontop, @function
gort__ctx_switch_ontop:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movl	(%rsp), %eax
	movzwl	4(%rsp), %r8d
	andl	$~0x3f, %eax
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	movl	%eax, %ebx	// the current words, kept across fn in two callee-saved
	movl	%r8d, %r12d	// registers, which the target's frame restores after
	movq	%rcx, %rdi
	call	*%rdx		// the saved sp is 16-byte aligned: the ABI's alignment at a call
	movl	(%rsp), %eax
	andl	$~0x3f, %eax
	cmpl	%eax, %ebx
	jne	1f
	cmpw	4(%rsp), %r12w
	jne	1f
2:	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
1:	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	jmp	2b
	.cfi_endproc
	.size	gort__ctx_switch_ontop, .-gort__ctx_switch_ontop

// The first return of a new goroutine lands here, with its stack 16-byte
// aligned and r12 holding the goroutine (g_t *). A zero return address
// ends debuggers' and unwinders' walks.
	.globl	gort__ctx_entry
	.hidden	gort__ctx_entry
	.type	gort__ctx_entry, @function
gort__ctx_entry:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp
	movq	%r12, %rdi
	pushq	$0
	pushq	$0
	call	gort__sched_gomain	// never returns
	ud2
	.cfi_endproc
	.size	gort__ctx_entry, .-gort__ctx_entry

	.section .note.GNU-stack,"",@progbits
