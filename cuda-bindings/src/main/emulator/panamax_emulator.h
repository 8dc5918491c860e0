// Panamax's emulated CUDA device: CUDA's execution model on the CPU, for kernel sources compiled by a host C++
// compiler (g++ 12 or newer). A launch runs its grid's blocks one after another; the threads of a block are
// cooperative fibers that switch only at __syncthreads and at warp operations, so a barrier or a shuffle that not
// every thread reaches is detected (every other fiber is blocked or has exited) and reported as a fault naming the
// block and thread, never a hang. Device pointers are global_ptr<T>: an address plus the allocation it points into,
// checked on every access. The runtime behind these declarations is emulator.cpp.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <string>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__
#define __launch_bounds__(...)
// nvcc's unrolling hint (panamax_kernel.h): the emulated device needs none.
#define PANAMAX_UNROLL
#define PANAMAX_NO_UNROLL
// One copy per block, since blocks run one at a time (and launches one at a time per library). The section lets the
// runtime fill every static shared array with NaNs before each block, as a GPU leaves garbage there.
#define __shared__ static __attribute__((section("panamax_shared"), aligned(16)))

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x = 1, unsigned int y = 1, unsigned int z = 1) : x(x), y(y), z(z) {}
};

constexpr int warpSize = 32;

// CUDA's bfloat16 (cuda_bf16.h), as much as kernels that store it need: the upper half of a binary32 and the
// conversion from float, rounding to nearest even (a NaN stays a quiet NaN of the same sign).
struct __nv_bfloat16 {
    uint16_t bits;
};

// CUDA's binary16 (cuda_fp16.h), as much as kernels that read its bits need: weights kept as a file's 16-bit units.
struct __half {
    uint16_t bits;
};

namespace pmx {

// The memory a device pointer may reach: [base, base + bytes), named in fault messages.
struct Region {
    uintptr_t base;
    size_t bytes;
    char name[48];
};

// What the running fiber sees; the runtime keeps one per OS thread.
struct Context {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
};

extern Context context;

// Fault kinds, as reported to Java (KernelFaultException.Kind's ordinals + 1).
enum FaultKind : int {
    FAULT_OUT_OF_BOUNDS = 1,
    FAULT_BARRIER_DIVERGENCE = 2,
    FAULT_WARP_DIVERGENCE = 3,
    FAULT_TRAP = 4,
};

// Ends the launch with a fault blamed on the running thread; never returns to the kernel.
[[noreturn]] void fault(int kind, const char* format, ...) __attribute__((format(printf, 2, 3)));

// Checks an access of `size` bytes at `address` against `region`, faulting when it is outside. (Accesses are always
// aligned: a global_ptr<T> moves in whole elements from a 256-byte aligned allocation.)
void check_access(const Region* region, uintptr_t address, size_t size);

// The launch's dynamic shared memory and its region.
void* dynamic_shared(const Region** region);

// Warp operations: the calling lane's value (bits) goes in, the operation's result for this lane comes out.
enum WarpOp : int { OP_SHFL = 0, OP_SHFL_UP, OP_SHFL_DOWN, OP_SHFL_XOR, OP_BALLOT, OP_ANY, OP_ALL, OP_SYNCWARP };
uint64_t warp_op(int op, unsigned mask, uint64_t value, int argument, int width, const char* file, int line);
void syncthreads(const char* file, int line);

template <class T>
class global_ptr {
public:
    global_ptr() : address_(0), region_(nullptr) {}
    global_ptr(T* address, const Region* region) : address_(reinterpret_cast<uintptr_t>(address)), region_(region) {}
    template <class U, class = std::enable_if_t<std::is_convertible_v<U*, T*>>>
    global_ptr(const global_ptr<U>& other) : address_(other.address()), region_(other.region()) {}

    T& operator[](ptrdiff_t index) const { return *checked(index); }
    T& operator*() const { return *checked(0); }
    T* operator->() const { return checked(0); }

    global_ptr operator+(ptrdiff_t delta) const { return at(address_ + delta * sizeof(T), region_); }
    global_ptr operator-(ptrdiff_t delta) const { return at(address_ - delta * sizeof(T), region_); }
    ptrdiff_t operator-(const global_ptr& other) const {
        return (static_cast<ptrdiff_t>(address_) - static_cast<ptrdiff_t>(other.address_)) / static_cast<ptrdiff_t>(sizeof(T));
    }
    global_ptr& operator+=(ptrdiff_t delta) { address_ += delta * sizeof(T); return *this; }
    global_ptr& operator-=(ptrdiff_t delta) { address_ -= delta * sizeof(T); return *this; }
    global_ptr& operator++() { address_ += sizeof(T); return *this; }
    global_ptr& operator--() { address_ -= sizeof(T); return *this; }
    global_ptr operator++(int) { global_ptr old = *this; address_ += sizeof(T); return old; }
    global_ptr operator--(int) { global_ptr old = *this; address_ -= sizeof(T); return old; }
    bool operator==(const global_ptr& other) const { return address_ == other.address_; }
    bool operator!=(const global_ptr& other) const { return address_ != other.address_; }
    bool operator<(const global_ptr& other) const { return address_ < other.address_; }
    bool operator<=(const global_ptr& other) const { return address_ <= other.address_; }
    bool operator>(const global_ptr& other) const { return address_ > other.address_; }
    bool operator>=(const global_ptr& other) const { return address_ >= other.address_; }

    uintptr_t address() const { return address_; }
    const Region* region() const { return region_; }

private:
    // Not a T*: pointer arithmetic that leaves the allocation is legal here until the pointer is dereferenced.
    uintptr_t address_;
    const Region* region_;

    static global_ptr at(uintptr_t address, const Region* region) {
        global_ptr pointer;
        pointer.address_ = address;
        pointer.region_ = region;
        return pointer;
    }

    T* checked(ptrdiff_t index) const {
        uintptr_t address = address_ + static_cast<uintptr_t>(index) * sizeof(T);
        check_access(region_, address, sizeof(T));
        return reinterpret_cast<T*>(address);
    }

    template <class U>
    friend class global_ptr;
};

// The kernel table: each PANAMAX_EXPORT adds one entry, which the Java launcher finds by name.
struct Argument {
    uint64_t value;  // an int, long or float's bits, or a pointer's address
    uint64_t base;   // for pointers: the start of the allocation it points into
    uint64_t bytes;  // for pointers: that allocation's size
};

using Invoker = void (*)(void* kernel, const Argument* arguments, const Region* regions);

void register_kernel(const char* name, const char* signature, int parameter_count, void* kernel, Invoker invoker);

template <class T>
struct Parameter {
    static_assert(sizeof(T) == 0,
            "kernel parameters must be int, unsigned int, long long, float or global_ptr<T> "
            "(raw pointers are not bounds-checked)");
};
template <>
struct Parameter<int> {
    static constexpr const char* name = "int";
    static int from(const Argument& a, const Region*) { return static_cast<int>(static_cast<uint32_t>(a.value)); }
};
template <>
struct Parameter<unsigned int> {
    static constexpr const char* name = "unsigned int";
    static unsigned int from(const Argument& a, const Region*) { return static_cast<uint32_t>(a.value); }
};
template <>
struct Parameter<long long> {
    static constexpr const char* name = "long long";
    static long long from(const Argument& a, const Region*) { return static_cast<long long>(a.value); }
};
template <>
struct Parameter<unsigned long long> {
    static constexpr const char* name = "unsigned long long";
    static unsigned long long from(const Argument& a, const Region*) { return a.value; }
};
template <>
struct Parameter<float> {
    static constexpr const char* name = "float";
    static float from(const Argument& a, const Region*) {
        uint32_t bits = static_cast<uint32_t>(a.value);
        float value;
        memcpy(&value, &bits, sizeof value);
        return value;
    }
};

template <class T>
struct ElementName;
template <>
struct ElementName<float> {
    static constexpr const char* name = "float";
};
template <>
struct ElementName<int> {
    static constexpr const char* name = "int";
};
template <>
struct ElementName<unsigned int> {
    static constexpr const char* name = "unsigned int";
};
template <>
struct ElementName<__nv_bfloat16> {
    static constexpr const char* name = "__nv_bfloat16";
};
template <>
struct ElementName<__half> {
    static constexpr const char* name = "__half";
};

template <class T>
struct Parameter<global_ptr<T>> {
    using Element = std::remove_const_t<T>;
    static constexpr bool is_const = std::is_const_v<T>;
    static const char* name() {
        static const std::string spelled = std::string(is_const ? "const " : "") + ElementName<Element>::name + "*";
        return spelled.c_str();
    }
    static global_ptr<T> from(const Argument& a, const Region* region) {
        return global_ptr<T>(reinterpret_cast<T*>(a.value), region);
    }
};

template <class T>
const char* parameter_name() {
    if constexpr (requires { Parameter<T>::name(); }) {
        return Parameter<T>::name();
    } else {
        return Parameter<T>::name;
    }
}

template <class... P, size_t... I>
void invoke(void (*kernel)(P...), const Argument* arguments, const Region* regions, std::index_sequence<I...>) {
    kernel(Parameter<std::remove_cv_t<P>>::from(arguments[I], &regions[I])...);
}

template <class... P>
struct Registration {
    Registration(const char* name, void (*kernel)(P...)) {
        static char signature[512];
        size_t used = 0;
        const char* names[] = {parameter_name<std::remove_cv_t<P>>()..., nullptr};
        for (size_t i = 0; i < sizeof...(P); ++i) {
            for (const char* c = (i == 0 ? "" : ","); *c != '\0' && used + 1 < sizeof signature; ++c) {
                signature[used++] = *c;
            }
            for (const char* c = names[i]; *c != '\0' && used + 1 < sizeof signature; ++c) {
                signature[used++] = *c;
            }
        }
        signature[used] = '\0';
        register_kernel(name, signature, static_cast<int>(sizeof...(P)), reinterpret_cast<void*>(kernel),
                [](void* k, const Argument* arguments, const Region* regions) {
                    invoke(reinterpret_cast<void (*)(P...)>(k), arguments, regions,
                            std::index_sequence_for<P...>{});
                });
    }
};

template <class T>
uint64_t to_bits(T value) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "warp operations take values of at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &value, sizeof value);
    return bits;
}

template <class T>
T from_bits(uint64_t bits) {
    T value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

// Atomics as compare-and-swap loops on the compiler's builtins (GCC has no fetch-max or float fetch-add), so they stay
// atomic should blocks ever run on several OS threads. Returns the old value, as CUDA's atomics do.
template <class T, class F>
T atomic_update(T* address, F update) {
    T old;
    T next;
    __atomic_load(address, &old, __ATOMIC_RELAXED);
    do {
        next = update(old);
    } while (!__atomic_compare_exchange(address, &old, &next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}

template <class T>
T atomic_add(T* address, T value) {
    return atomic_update(address, [value](T old) { return static_cast<T>(old + value); });
}

template <class T>
T* checked_address(global_ptr<T> pointer) {
    return &pointer[0];
}

}  // namespace pmx

#define threadIdx (pmx::context.thread_idx)
#define blockIdx (pmx::context.block_idx)
#define blockDim (pmx::context.block_dim)
#define gridDim (pmx::context.grid_dim)

#define __syncthreads() pmx::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) pmx::warp_op(pmx::OP_SYNCWARP, pmx_syncwarp_mask(__VA_ARGS__), 0, 0, 32, __FILE__, __LINE__)
inline unsigned pmx_syncwarp_mask(unsigned mask = 0xffffffffu) {
    return mask;
}

#define PMX_SHUFFLE(op, mask, var, argument, ...) \
    pmx::from_bits<decltype(var)>(pmx::warp_op(op, mask, pmx::to_bits(var), argument, pmx_width(__VA_ARGS__), __FILE__, __LINE__))
inline int pmx_width(int width = warpSize) {
    return width;
}
#define __shfl_sync(mask, var, src_lane, ...) PMX_SHUFFLE(pmx::OP_SHFL, mask, var, src_lane, ##__VA_ARGS__)
#define __shfl_up_sync(mask, var, delta, ...) PMX_SHUFFLE(pmx::OP_SHFL_UP, mask, var, delta, ##__VA_ARGS__)
#define __shfl_down_sync(mask, var, delta, ...) PMX_SHUFFLE(pmx::OP_SHFL_DOWN, mask, var, delta, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, var, lane_mask, ...) PMX_SHUFFLE(pmx::OP_SHFL_XOR, mask, var, lane_mask, ##__VA_ARGS__)
#define __ballot_sync(mask, predicate) \
    static_cast<unsigned>(pmx::warp_op(pmx::OP_BALLOT, mask, (predicate) ? 1 : 0, 0, 32, __FILE__, __LINE__))
#define __any_sync(mask, predicate) \
    static_cast<int>(pmx::warp_op(pmx::OP_ANY, mask, (predicate) ? 1 : 0, 0, 32, __FILE__, __LINE__))
#define __all_sync(mask, predicate) \
    static_cast<int>(pmx::warp_op(pmx::OP_ALL, mask, (predicate) ? 1 : 0, 0, 32, __FILE__, __LINE__))

#define __trap() pmx::fault(pmx::FAULT_TRAP, "__trap() at %s:%d", __FILE__, __LINE__)

#define PANAMAX_DYNAMIC_SHARED(T, name)                                        \
    const pmx::Region* pmx_dynamic_region_##name;                              \
    void* pmx_dynamic_memory_##name = pmx::dynamic_shared(&pmx_dynamic_region_##name); \
    global_ptr<T> name(static_cast<T*>(pmx_dynamic_memory_##name), pmx_dynamic_region_##name)

#define PANAMAX_EXPORT(kernel) static pmx::Registration pmx_registration_##kernel(#kernel, &kernel);

using pmx::global_ptr;

// Atomics: raw pointers (shared memory, or &p[i] of a checked pointer) and checked pointers.
template <class T>
inline T atomicAdd(T* address, T value) {
    return pmx::atomic_add(address, value);
}
template <class T>
inline T atomicAdd(global_ptr<T> address, T value) {
    return pmx::atomic_add(pmx::checked_address(address), value);
}
template <class T>
inline T atomicMax(T* address, T value) {
    return pmx::atomic_update(address, [value](T old) { return old < value ? value : old; });
}
template <class T>
inline T atomicMin(T* address, T value) {
    return pmx::atomic_update(address, [value](T old) { return value < old ? value : old; });
}
template <class T>
inline T atomicExch(T* address, T value) {
    return __atomic_exchange_n(address, value, __ATOMIC_RELAXED);
}
template <class T>
inline T atomicCAS(T* address, T compare, T value) {
    __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;
}

// Device functions and intrinsics, with the CPU's (correctly rounded or libm) results.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline double __dadd_rn(double x, double y) { return x + y; }
inline double __dsub_rn(double x, double y) { return x - y; }
inline double __dmul_rn(double x, double y) { return x * y; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __int_as_float(int x) { return pmx::from_bits<float>(static_cast<uint32_t>(x)); }
inline int __float_as_int(float x) { return static_cast<int>(static_cast<uint32_t>(pmx::to_bits(x))); }
inline unsigned short __half_as_ushort(__half x) { return x.bits; }
inline unsigned __float_as_uint(float x) { return static_cast<uint32_t>(pmx::to_bits(x)); }
inline int __double2hiint(double x) { return static_cast<int>(static_cast<uint32_t>(pmx::to_bits(x) >> 32)); }
inline int __double2loint(double x) { return static_cast<int>(static_cast<uint32_t>(pmx::to_bits(x))); }
inline double __hiloint2double(int hi, int lo) {
    return pmx::from_bits<double>(static_cast<uint64_t>(static_cast<uint32_t>(hi)) << 32 | static_cast<uint32_t>(lo));
}
inline float __uint_as_float(unsigned x) { return pmx::from_bits<float>(x); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline __nv_bfloat16 __float2bfloat16_rn(float x) {
    uint32_t bits = pmx::to_bits(x);
    if (isnan(x)) {
        return __nv_bfloat16{static_cast<uint16_t>((bits >> 16) | 0x0040)};
    }
    return __nv_bfloat16{static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16)};
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
