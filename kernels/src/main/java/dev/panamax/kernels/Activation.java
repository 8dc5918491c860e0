package dev.panamax.kernels;

/** The elementwise activation functions of {@link Activations}. */
public enum Activation {
    /** GELU with the tanh approximation of GPT-2: {@code 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))}. */
    GELU_TANH,
    /** GELU in its exact form: {@code x·Φ(x) = 0.5·x·(1 + erf(x/√2))}. */
    GELU,
    /** SiLU (swish): {@code x·sigmoid(x)}. */
    SILU
}
