// The emulated device's runtime: the kernel table, the launcher Java calls through FFM, the fiber scheduler of a
// block, barriers, warp operations and faults. Fibers run on mmap'd stacks above guard pages; a fault switches back
// to the scheduler, which abandons the launch, so nothing unwinds through kernel code and the JVM sees no signal (but
// from a stack overflow that meets no check before the guard page).
#include "panamax_emulator.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <mutex>
#include <vector>

// Switching between fibers. On x86-64 a fiber switch saves the callee-saved registers on the old stack and loads
// them from the new one: no system call, unlike swapcontext, which saves the signal mask on every switch and so makes
// every barrier of a block cost a system call per thread. Elsewhere ucontext does the same, slower.
#if defined(__x86_64__) && !defined(PANAMAX_UCONTEXT_FIBERS)
extern "C" void panamax_switch_stack(void** save, void* load);
asm(R"(
    .text
    .p2align 4
    .hidden panamax_switch_stack
    .type panamax_switch_stack, @function
panamax_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size panamax_switch_stack, .-panamax_switch_stack
)");

namespace {
struct SavedContext {
    void* stack_pointer;
};

// A new fiber's stack, as panamax_switch_stack leaves a suspended one: six registers, then the entry as the return
// address, then a zero return address for the entry itself, which never returns (16-byte alignment at its call).
void prepare(SavedContext& fiber, char* stack, size_t bytes, void (*entry)()) {
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~static_cast<uintptr_t>(15);
    void** frame = reinterpret_cast<void**>(top);
    *--frame = nullptr;
    *--frame = reinterpret_cast<void*>(entry);
    for (int i = 0; i < 6; ++i) {
        *--frame = nullptr;
    }
    fiber.stack_pointer = frame;
}

void switch_context(SavedContext& from, SavedContext& to) {
    panamax_switch_stack(&from.stack_pointer, to.stack_pointer);
}
}  // namespace
#else
namespace {
using SavedContext = ucontext_t;

void prepare(SavedContext& fiber, char* stack, size_t bytes, void (*entry)()) {
    getcontext(&fiber);
    fiber.uc_stack.ss_sp = stack;
    fiber.uc_stack.ss_size = bytes;
    fiber.uc_link = nullptr;
    makecontext(&fiber, entry, 0);
}

void switch_context(SavedContext& from, SavedContext& to) {
    swapcontext(&from, &to);
}
}  // namespace
#endif

// The linker's bounds of the static __shared__ arrays (absent when no kernel declares one).
extern "C" char __start_panamax_shared[] __attribute__((weak));
extern "C" char __stop_panamax_shared[] __attribute__((weak));

namespace pmx {

Context context;

namespace {

struct Kernel {
    const char* name;
    const char* signature;
    int parameter_count;
    void* function;
    Invoker invoker;
};

std::vector<Kernel>& kernels() {
    static std::vector<Kernel> table;
    return table;
}

enum State { RUNNABLE, AT_BARRIER, AT_WARP_OP, EXITED };

struct Fiber {
    SavedContext context;
    char* stack;
    uint3 index;
    int linear;
    State state;
    const char* file;  // where it waits
    int line;
    // Its pending warp operation.
    int op;
    unsigned mask;
    uint64_t value;
    int argument;
    int width;
    uint64_t result;
};

// Each fiber's stack; kernels keep small frames, and the pages are only committed when touched. Below it lies one
// inaccessible guard page, so an overflow faults the process instead of writing into another fiber's stack.
constexpr size_t STACK_BYTES = 256 * 1024;

// The stack a thread keeps in reserve for reporting a fault: the emulator's hooks fault a thread whose frames reach
// this close to the guard page, while there is still room to format the message and leave the fiber.
constexpr size_t STACK_RESERVE = 32 * 1024;

struct Launch {
    const Kernel* kernel;
    const Argument* arguments;
    std::vector<Region> regions;
    Region shared_region;
    std::vector<unsigned char> shared;
    std::vector<Fiber> fibers;
    int live_threads;
    int at_barrier;
    SavedContext scheduler;
    Fiber* current;
    uint64_t random;
    bool faulted;
    int fault_kind;
    uint3 fault_block;
    uint3 fault_thread;
    char message[2048];
};

// One launch at a time: shared memory is static, and the launch's state is global to the fibers it runs.
std::mutex launch_lock;
Launch* launch_state;
std::vector<char*> stacks;

uint64_t next_random(Launch& launch) {
    // xorshift64*: a seeded, reproducible order.
    uint64_t x = launch.random;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    launch.random = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void format_thread(char* out, size_t size, uint3 index) {
    snprintf(out, size, "(%u,%u,%u)", index.x, index.y, index.z);
}

[[noreturn]] void abandon_fiber(Launch& launch) {
    Fiber* fiber = launch.current;
    switch_context(fiber->context, launch.scheduler);
    __builtin_unreachable();
}

void record_fault(Launch& launch, int kind, uint3 thread, const char* message) {
    launch.faulted = true;
    launch.fault_kind = kind;
    launch.fault_block = context.block_idx;
    launch.fault_thread = thread;
    snprintf(launch.message, sizeof launch.message, "%s", message);
}

void fiber_main() {
    Launch& launch = *launch_state;
    launch.kernel->invoker(launch.kernel->function, launch.arguments, launch.regions.data());
    launch.current->state = EXITED;
    launch.live_threads--;
    abandon_fiber(launch);
}

void yield(Launch& launch) {
    switch_context(launch.current->context, launch.scheduler);
    context.thread_idx = launch.current->index;
}

const char* op_name(int op) {
    static const char* names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
            "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp"};
    return names[op];
}

// What a thread is doing, for messages: "exited", "waits at __syncthreads (f.cu:12)".
void describe(const Fiber& fiber, char* out, size_t size) {
    switch (fiber.state) {
        case EXITED:
            snprintf(out, size, "exited");
            break;
        case AT_BARRIER:
            snprintf(out, size, "waits at __syncthreads (%s:%d)", fiber.file, fiber.line);
            break;
        case AT_WARP_OP:
            snprintf(out, size, "waits at %s (%s:%d) with mask 0x%08x", op_name(fiber.op), fiber.file, fiber.line,
                    fiber.mask);
            break;
        default:
            snprintf(out, size, "runs");
    }
}

// The block is stuck: every live thread waits at a barrier or a warp operation that cannot complete.
void diagnose_deadlock(Launch& launch) {
    const Fiber* waiting = nullptr;
    for (const Fiber& fiber : launch.fibers) {
        if (fiber.state == AT_BARRIER && waiting == nullptr) {
            waiting = &fiber;
        }
    }
    char first[160];
    char other[160];
    if (waiting != nullptr) {
        // A barrier that some thread of the block will never reach: name the first such thread.
        int arrived = 0;
        for (const Fiber& fiber : launch.fibers) {
            arrived += fiber.state == AT_BARRIER && fiber.line == waiting->line && strcmp(fiber.file, waiting->file) == 0;
        }
        for (const Fiber& fiber : launch.fibers) {
            if (fiber.state != AT_BARRIER || fiber.line != waiting->line || strcmp(fiber.file, waiting->file) != 0) {
                char thread[48];
                char where[48];
                format_thread(thread, sizeof thread, fiber.index);
                format_thread(where, sizeof where, waiting->index);
                describe(*waiting, first, sizeof first);
                describe(fiber, other, sizeof other);
                char message[1024];
                snprintf(message, sizeof message,
                        "divergent barrier: %d of %d threads wait at __syncthreads (%s:%d), e.g. thread %s, but "
                        "thread %s %s",
                        arrived, static_cast<int>(launch.fibers.size()), waiting->file, waiting->line,
                        where, thread, other);
                record_fault(launch, FAULT_BARRIER_DIVERGENCE, fiber.index, message);
                return;
            }
        }
    }
    // Only warp operations wait: name a missing lane of the first one.
    for (const Fiber& fiber : launch.fibers) {
        if (fiber.state != AT_WARP_OP) {
            continue;
        }
        int warp = fiber.linear / 32;
        for (int lane = 0; lane < 32; ++lane) {
            if ((fiber.mask >> lane & 1) == 0) {
                continue;
            }
            size_t linear = static_cast<size_t>(warp) * 32 + lane;
            char message[1024];
            char where[48];
            format_thread(where, sizeof where, fiber.index);
            describe(fiber, first, sizeof first);
            if (linear >= launch.fibers.size()) {
                snprintf(message, sizeof message,
                        "divergent warp operation: thread %s %s, but lane %d of warp %d does not exist (the block "
                        "has %zu threads)",
                        where, first, lane, warp, launch.fibers.size());
                record_fault(launch, FAULT_WARP_DIVERGENCE, fiber.index, message);
                return;
            }
            const Fiber& missing = launch.fibers[linear];
            bool joined = missing.state == AT_WARP_OP && missing.mask == fiber.mask && missing.op == fiber.op
                    && missing.line == fiber.line && strcmp(missing.file, fiber.file) == 0;
            if (!joined) {
                char thread[48];
                format_thread(thread, sizeof thread, missing.index);
                describe(missing, other, sizeof other);
                snprintf(message, sizeof message,
                        "divergent warp operation: thread %s %s, but thread %s (lane %d of warp %d) %s", where,
                        first, thread, lane, warp, other);
                record_fault(launch, FAULT_WARP_DIVERGENCE, missing.index, message);
                return;
            }
        }
    }
    record_fault(launch, FAULT_BARRIER_DIVERGENCE, launch.fibers[0].index, "the block's threads cannot proceed");
}

// Completes a warp operation once every lane of its mask has arrived; returns false while some are missing.
bool try_complete(Launch& launch, const Fiber& arrived) {
    int warp = arrived.linear / 32;
    Fiber* lanes[32] = {};
    for (int lane = 0; lane < 32; ++lane) {
        if ((arrived.mask >> lane & 1) == 0) {
            continue;
        }
        size_t linear = static_cast<size_t>(warp) * 32 + lane;
        if (linear >= launch.fibers.size()) {
            return false;
        }
        Fiber& fiber = launch.fibers[linear];
        if (fiber.state != AT_WARP_OP || fiber.mask != arrived.mask) {
            return false;
        }
        lanes[lane] = &fiber;
    }
    unsigned votes = 0;
    for (int lane = 0; lane < 32; ++lane) {
        if (lanes[lane] != nullptr && lanes[lane]->value != 0) {
            votes |= 1u << lane;
        }
    }
    for (int lane = 0; lane < 32; ++lane) {
        Fiber* fiber = lanes[lane];
        if (fiber == nullptr) {
            continue;
        }
        if (fiber->op != arrived.op || fiber->line != arrived.line || strcmp(fiber->file, arrived.file) != 0) {
            char message[1024];
            char a[160];
            char b[160];
            describe(arrived, a, sizeof a);
            describe(*fiber, b, sizeof b);
            snprintf(message, sizeof message, "divergent warp operation: lane %d %s, but lane %d %s",
                    arrived.linear % 32, a, lane, b);
            record_fault(launch, FAULT_WARP_DIVERGENCE, fiber->index, message);
            return false;
        }
        int width = fiber->width;
        int segment = lane / width * width;
        int source = lane;
        switch (fiber->op) {
            case OP_SHFL:
                source = segment + (fiber->argument & (width - 1));
                break;
            case OP_SHFL_UP:
                source = lane - segment >= fiber->argument ? lane - fiber->argument : lane;
                break;
            case OP_SHFL_DOWN:
                source = lane - segment + fiber->argument < width ? lane + fiber->argument : lane;
                break;
            case OP_SHFL_XOR:
                source = lane ^ fiber->argument;
                source = source < segment + width ? source : lane;
                break;
            default:
                break;
        }
        if (fiber->op <= OP_SHFL_XOR) {
            if (source < 0 || source >= 32 || lanes[source] == nullptr) {
                char message[1024];
                snprintf(message, sizeof message,
                        "%s (%s:%d): lane %d reads lane %d, which is not in the mask 0x%08x", op_name(fiber->op),
                        fiber->file, fiber->line, lane, source, fiber->mask);
                record_fault(launch, FAULT_WARP_DIVERGENCE, fiber->index, message);
                return false;
            }
            fiber->result = lanes[source]->value;
        } else if (fiber->op == OP_BALLOT) {
            fiber->result = votes;
        } else if (fiber->op == OP_ANY) {
            fiber->result = votes != 0;
        } else if (fiber->op == OP_ALL) {
            fiber->result = votes == arrived.mask;
        }
    }
    for (Fiber* fiber : lanes) {
        if (fiber != nullptr) {
            fiber->state = RUNNABLE;
        }
    }
    return true;
}

char* take_stack() {
    if (!stacks.empty()) {
        char* stack = stacks.back();
        stacks.pop_back();
        return stack;
    }
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* memory = mmap(nullptr, page + STACK_BYTES, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) {
        return nullptr;
    }
    if (mprotect(memory, page, PROT_NONE) != 0) {
        munmap(memory, page + STACK_BYTES);
        return nullptr;
    }
    return static_cast<char*>(memory) + page;
}

// Faults the running thread when its frames have used its stack down to the reserve (deep recursion, large local
// arrays), so the overflow is reported at a checked access, barrier or warp operation rather than at the guard page.
void check_stack() {
    Launch* launch = launch_state;
    if (launch == nullptr || launch->current == nullptr) {
        return;
    }
    uintptr_t frame = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
    uintptr_t end = reinterpret_cast<uintptr_t>(launch->current->stack);
    if (frame < end + STACK_RESERVE) {
        fault(FAULT_TRAP,
                "stack overflow: the thread has used %zu of its %zu-byte stack (deep recursion or large local arrays)",
                STACK_BYTES - static_cast<size_t>(frame - end), STACK_BYTES);
    }
}

// Runs one block to completion or to its first fault; false when it faulted.
bool run_block(Launch& launch, uint3 block, bool shuffled) {
    context.block_idx = block;
    size_t threads = launch.fibers.size();
    // Fresh shared memory holds garbage on a GPU: fill it with NaNs so a read before a write shows.
    memset(launch.shared.data(), 0xff, launch.shared.size());
    memset(__start_panamax_shared, 0xff, __stop_panamax_shared - __start_panamax_shared);
    launch.live_threads = static_cast<int>(threads);
    launch.at_barrier = 0;
    dim3 dim = context.block_dim;
    for (size_t i = 0; i < threads; ++i) {
        Fiber& fiber = launch.fibers[i];
        fiber.linear = static_cast<int>(i);
        fiber.index = uint3{static_cast<unsigned>(i % dim.x), static_cast<unsigned>(i / dim.x % dim.y),
                static_cast<unsigned>(i / (static_cast<size_t>(dim.x) * dim.y))};
        fiber.state = RUNNABLE;
        prepare(fiber.context, fiber.stack, STACK_BYTES, fiber_main);
    }
    std::vector<int> order(threads);
    while (launch.live_threads > 0) {
        order.clear();
        for (size_t i = 0; i < threads; ++i) {
            if (launch.fibers[i].state == RUNNABLE) {
                order.push_back(static_cast<int>(i));
            }
        }
        if (order.empty()) {
            diagnose_deadlock(launch);
            return false;
        }
        if (shuffled) {
            for (size_t i = order.size() - 1; i > 0; --i) {
                std::swap(order[i], order[next_random(launch) % (i + 1)]);
            }
        }
        for (int i : order) {
            Fiber& fiber = launch.fibers[i];
            if (fiber.state != RUNNABLE) {
                continue;
            }
            launch.current = &fiber;
            context.thread_idx = fiber.index;
            switch_context(launch.scheduler, fiber.context);
            if (launch.faulted) {
                return false;
            }
        }
    }
    return true;
}

uint64_t gcd(uint64_t a, uint64_t b) {
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

}  // namespace

void register_kernel(const char* name, const char* signature, int parameter_count, void* kernel, Invoker invoker) {
    kernels().push_back(Kernel{name, signature, parameter_count, kernel, invoker});
}

void fault(int kind, const char* format, ...) {
    Launch& launch = *launch_state;
    char message[1024];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(message, sizeof message, format, arguments);
    va_end(arguments);
    record_fault(launch, kind, launch.current->index, message);
    abandon_fiber(launch);
}

void check_access(const Region* region, uintptr_t address, size_t size) {
    check_stack();
    if (region == nullptr || region->bytes == 0) {
        fault(FAULT_OUT_OF_BOUNDS, "access to 0x%lx through a pointer to no memory (%s)",
                static_cast<unsigned long>(address), region == nullptr ? "a null pointer" : region->name);
    }
    if (address < region->base || address - region->base > region->bytes - size || region->bytes < size) {
        long offset = static_cast<long>(address - region->base);
        fault(FAULT_OUT_OF_BOUNDS,
                "out-of-bounds access: %zu bytes at byte offset %ld of %s, which holds %zu bytes (element %ld)", size,
                offset, region->name, region->bytes, offset / static_cast<long>(size));
    }
}

void* dynamic_shared(const Region** region) {
    Launch& launch = *launch_state;
    *region = &launch.shared_region;
    return launch.shared.data();
}

void syncthreads(const char* file, int line) {
    check_stack();
    Launch& launch = *launch_state;
    Fiber& self = *launch.current;
    self.state = AT_BARRIER;
    self.file = file;
    self.line = line;
    if (++launch.at_barrier == static_cast<int>(launch.fibers.size())) {
        for (Fiber& fiber : launch.fibers) {
            if (fiber.line != line || strcmp(fiber.file, file) != 0) {
                diagnose_deadlock(launch);
                abandon_fiber(launch);
            }
        }
        for (Fiber& fiber : launch.fibers) {
            fiber.state = RUNNABLE;
        }
        launch.at_barrier = 0;
    }
    yield(launch);
}

uint64_t warp_op(int op, unsigned mask, uint64_t value, int argument, int width, const char* file, int line) {
    check_stack();
    Launch& launch = *launch_state;
    Fiber& self = *launch.current;
    int lane = self.linear % 32;
    if ((mask >> lane & 1) == 0) {
        fault(FAULT_WARP_DIVERGENCE, "%s (%s:%d) with mask 0x%08x called by lane %d, which the mask leaves out",
                op_name(op), file, line, mask, lane);
    }
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
        fault(FAULT_WARP_DIVERGENCE, "%s (%s:%d): width %d is not a power of two from 1 to 32", op_name(op), file,
                line, width);
    }
    self.state = AT_WARP_OP;
    self.op = op;
    self.mask = mask;
    self.value = value;
    self.argument = argument;
    self.width = width;
    self.file = file;
    self.line = line;
    try_complete(launch, self);
    if (launch.faulted) {
        abandon_fiber(launch);
    }
    yield(launch);
    return self.result;
}

}  // namespace pmx

using namespace pmx;

#define PANAMAX_API __attribute__((visibility("default")))

extern "C" {

// The version of the interface below; the Java launcher refuses a library with another.
PANAMAX_API int panamax_emulator_abi() {
    return 2;
}

PANAMAX_API int panamax_kernel_count() {
    return static_cast<int>(kernels().size());
}

PANAMAX_API const char* panamax_kernel_name(int kernel) {
    return kernels()[kernel].name;
}

PANAMAX_API const char* panamax_kernel_signature(int kernel) {
    return kernels()[kernel].signature;
}

// Runs one launch; returns 0, or a FaultKind with fault[0..5] = block and thread and the message in `message`.
// A schedule seed of 0 runs blocks and threads in index order; any other seed shuffles both, reproducibly.
PANAMAX_API int panamax_launch(int kernel, const unsigned* grid, const unsigned* block, long shared_bytes,
        const Argument* arguments, uint64_t schedule_seed, unsigned* fault, char* message, long message_bytes) {
    std::lock_guard<std::mutex> lock(launch_lock);
    Launch launch{};
    launch.kernel = &kernels()[kernel];
    launch.arguments = arguments;
    launch.regions.resize(launch.kernel->parameter_count);
    for (int i = 0; i < launch.kernel->parameter_count; ++i) {
        Region& region = launch.regions[i];
        region.base = arguments[i].base;
        region.bytes = arguments[i].bytes;
        snprintf(region.name, sizeof region.name, "argument %d", i);
    }
    launch.shared.resize(static_cast<size_t>(shared_bytes));
    launch.shared_region.base = reinterpret_cast<uintptr_t>(launch.shared.data());
    launch.shared_region.bytes = static_cast<size_t>(shared_bytes);
    snprintf(launch.shared_region.name, sizeof launch.shared_region.name, "dynamic shared memory");
    launch.random = schedule_seed * 0x9E3779B97F4A7C15ULL + 1;
    size_t threads = static_cast<size_t>(block[0]) * block[1] * block[2];
    launch.fibers.resize(threads);
    bool stacks_ok = true;
    for (Fiber& fiber : launch.fibers) {
        fiber.stack = take_stack();
        stacks_ok = stacks_ok && fiber.stack != nullptr;
    }
    launch_state = &launch;
    context.block_dim = dim3(block[0], block[1], block[2]);
    context.grid_dim = dim3(grid[0], grid[1], grid[2]);
    uint64_t blocks = static_cast<uint64_t>(grid[0]) * grid[1] * grid[2];
    // Blocks in a seeded order: index i runs block (a·i + c) mod n, a permutation when gcd(a, n) = 1.
    uint64_t a = 1;
    uint64_t c = 0;
    if (schedule_seed != 0 && blocks > 1) {
        do {
            a = next_random(launch) % blocks;
        } while (gcd(a, blocks) != 1);
        c = next_random(launch) % blocks;
    }
    if (!stacks_ok) {
        snprintf(launch.message, sizeof launch.message, "could not map %zu fiber stacks of %zu bytes", threads,
                STACK_BYTES);
        launch.faulted = true;
        launch.fault_kind = FAULT_TRAP;
    }
    for (uint64_t i = 0; i < blocks && !launch.faulted; ++i) {
        // 128-bit product: a·i may exceed 64 bits for grids of more than 2^32 blocks.
        uint64_t b = static_cast<uint64_t>((static_cast<unsigned __int128>(a) * i + c) % blocks);
        uint3 index{static_cast<unsigned>(b % grid[0]), static_cast<unsigned>(b / grid[0] % grid[1]),
                static_cast<unsigned>(b / (static_cast<uint64_t>(grid[0]) * grid[1]))};
        run_block(launch, index, schedule_seed != 0);
    }
    for (Fiber& fiber : launch.fibers) {
        if (fiber.stack != nullptr) {
            stacks.push_back(fiber.stack);
        }
    }
    launch_state = nullptr;
    if (!launch.faulted) {
        return 0;
    }
    fault[0] = launch.fault_block.x;
    fault[1] = launch.fault_block.y;
    fault[2] = launch.fault_block.z;
    fault[3] = launch.fault_thread.x;
    fault[4] = launch.fault_thread.y;
    fault[5] = launch.fault_thread.z;
    snprintf(message, static_cast<size_t>(message_bytes), "%s", launch.message);
    return launch.fault_kind;
}

// Out-of-range indexes into arrays of known size (static __shared__ arrays, local arrays), reported by g++'s
// -fsanitize=bounds instrumentation; this library defines the handlers instead of linking libubsan.
struct SourceLocation {
    const char* file;
    uint32_t line;
    uint32_t column;
};

struct OutOfBoundsData {
    SourceLocation location;
    const void* array_type;
    const void* index_type;
};

void __ubsan_handle_out_of_bounds(OutOfBoundsData* data, uintptr_t index) {
    if (launch_state == nullptr) {
        return;
    }
    fault(FAULT_OUT_OF_BOUNDS, "out-of-bounds index %ld into an array at %s:%u", static_cast<long>(index),
            data->location.file, data->location.line);
}

void __ubsan_handle_out_of_bounds_abort(OutOfBoundsData* data, uintptr_t index) {
    __ubsan_handle_out_of_bounds(data, index);
}

struct DivisionData {
    SourceLocation location;
    const void* type;
};

void __ubsan_handle_divrem_overflow(DivisionData* data, uintptr_t, uintptr_t) {
    if (launch_state == nullptr) {
        return;
    }
    fault(FAULT_TRAP, "integer division by zero or overflow at %s:%u", data->location.file, data->location.line);
}

void __ubsan_handle_divrem_overflow_abort(DivisionData* data, uintptr_t lhs, uintptr_t rhs) {
    __ubsan_handle_divrem_overflow(data, lhs, rhs);
}
}
