# The code chaos-host maps into a node process and points the vDSO clock
# entries at (see vdso.rs, which holds it as bytes). Assemble to check:
#   as --64 -o c.o vdso_x86_64.S && objdump -d -M intel c.o
# cg/gtod/tm: clock_gettime, gettimeofday, time by the real syscall, plus
# off(): step + (monotonic - t0) * ppm / 1e6 ns, from the data at 0xf00
# that the host writes through /proc/PID/mem.
    .intel_syntax noprefix
    .text
    .globl cg, gtod, tm
cg:
    mov eax, 228
    syscall
    test rax, rax
    jnz 9f
    cmp edi, 0
    je 1f
    cmp edi, 5
    jne 9f
1:  call off
    mov rcx, [rsi]
    imul rcx, rcx, 1000000000
    add rcx, [rsi+8]
    add rax, rcx
    mov rcx, 1000000000
    cqo
    idiv rcx
    test rdx, rdx
    jns 2f
    add rdx, rcx
    dec rax
2:  mov [rsi], rax
    mov [rsi+8], rdx
    xor eax, eax
9:  ret

gtod:
    mov eax, 96
    syscall
    test rax, rax
    jnz 9f
    test rdi, rdi
    jz 9f
    call off
    mov rcx, [rdi]
    imul rcx, rcx, 1000000000
    mov rdx, [rdi+8]
    imul rdx, rdx, 1000
    add rcx, rdx
    add rax, rcx
    mov rcx, 1000000000
    cqo
    idiv rcx
    test rdx, rdx
    jns 2f
    add rdx, rcx
    dec rax
2:  mov [rdi], rax
    mov rax, rdx
    xor edx, edx
    mov ecx, 1000
    div rcx
    mov [rdi+8], rax
    xor eax, eax
9:  ret

tm:
    push rdi
    sub rsp, 16
    xor edi, edi
    mov rsi, rsp
    mov eax, 228
    syscall
    call off
    mov rcx, [rsp]
    imul rcx, rcx, 1000000000
    add rcx, [rsp+8]
    add rax, rcx
    mov rcx, 1000000000
    cqo
    idiv rcx
    test rdx, rdx
    jns 2f
    dec rax
2:  add rsp, 16
    pop rdi
    test rdi, rdi
    jz 9f
    mov [rdi], rax
9:  ret

off:
    mov rax, [rip+ppm]
    test rax, rax
    jz 1f
    push rdi
    push rsi
    sub rsp, 24
    mov edi, 1
    mov rsi, rsp
    mov eax, 228
    syscall
    mov rax, [rsp]
    imul rax, rax, 1000000000
    add rax, [rsp+8]
    add rsp, 24
    pop rsi
    pop rdi
    sub rax, [rip+t0]
    imul qword ptr [rip+ppm]
    mov rcx, 1000000
    idiv rcx
    add rax, [rip+step]
    ret
1:  mov rax, [rip+step]
    ret

    .org 0xf00
t0: .quad 0
ppm: .quad 0
step: .quad 0
magic: .ascii "chaosclk"
