//! The reproducible pseudo-random numbers of seed, bench and soak: the same seed gives the same data and the same choices on every machine and every build.

/// The seed every reproducible run uses unless told otherwise: `cadrex seed`'s
/// data, and the cadres bench and soak choose from it.
pub const DEFAULT_SEED: u64 = 20_240_601;

/// splitmix64 (Steele, Lea & Flood, 2014). Written here rather than taken from
/// `rand`: seeding needs only reproducibility, ten lines do it, and the output
/// then cannot change under a crate upgrade (rand's value streams have changed
/// between major versions, which would silently change "the same seed").
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// A 32-hex-digit id in the form the server's ids take.
    pub fn id(&mut self) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(b)
            .into_uuid()
            .simple()
            .to_string()
    }
}
