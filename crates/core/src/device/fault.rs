//! A test device that models power loss. Reads see every write; only flushed writes are
//! durable. [`FaultDevice::power_cut`] returns the image a machine would find after a
//! cut: the durable bytes plus a random subset of the unflushed writes, the last kept one
//! possibly torn at a 512-byte boundary. With a cut point armed, the device dies at that
//! write: it records the cut image and fails every later call with EIO.

use std::io;

use parking_lot::Mutex;

use super::Device;

const SECTOR: usize = 512;

/// Deterministic generator (xorshift64*) so a failing cut can be replayed from its seed.
#[derive(Clone, Debug)]
pub struct PowerCut {
    state: u64,
}

impl PowerCut {
    pub fn new(seed: u64) -> Self {
        PowerCut {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

struct State {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    unflushed: Vec<(u64, Vec<u8>)>,
    writes: u64,
    cut_at: Option<u64>,
    cut: Option<(PowerCut, Vec<u8>)>,
    cut_rng: PowerCut,
    dead: bool,
}

pub struct FaultDevice {
    state: Mutex<State>,
}

impl FaultDevice {
    /// A device holding `image` as its durable content.
    pub fn new(image: Vec<u8>) -> Self {
        FaultDevice {
            state: Mutex::new(State {
                volatile: image.clone(),
                durable: image,
                unflushed: Vec::new(),
                writes: 0,
                cut_at: None,
                cut: None,
                cut_rng: PowerCut::new(1),
                dead: false,
            }),
        }
    }

    /// Arms a power cut just before write number `n` (counted from 0) lands.
    pub fn arm_cut(&self, n: u64, rng: PowerCut) {
        let mut s = self.state.lock();
        s.cut_at = Some(n);
        s.cut_rng = rng;
    }

    /// Number of writes so far.
    pub fn writes(&self) -> u64 {
        self.state.lock().writes
    }

    /// True once an armed cut has happened.
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// The image after the armed cut, if it happened.
    pub fn cut_image(&self) -> Option<Vec<u8>> {
        self.state.lock().cut.as_ref().map(|(_, img)| img.clone())
    }

    /// The image a power cut right now would leave.
    pub fn power_cut(&self, rng: &mut PowerCut) -> Vec<u8> {
        let s = self.state.lock();
        Self::cut_of(&s, rng)
    }

    /// Everything written so far, as if flushed (a clean shutdown's image).
    pub fn volatile_image(&self) -> Vec<u8> {
        self.state.lock().volatile.clone()
    }

    fn cut_of(s: &State, rng: &mut PowerCut) -> Vec<u8> {
        let mut img = s.durable.clone();
        let kept: Vec<usize> = (0..s.unflushed.len())
            .filter(|_| rng.next().is_multiple_of(2))
            .collect();
        for (i, &w) in kept.iter().enumerate() {
            let (off, data) = &s.unflushed[w];
            let mut len = data.len();
            if i + 1 == kept.len() && rng.next().is_multiple_of(3) {
                // Tear the last kept write at a sector boundary.
                let sectors = data.len().div_ceil(SECTOR) as u64;
                len = ((rng.next() % sectors.max(1)) as usize * SECTOR).min(data.len());
            }
            let off = *off as usize;
            img[off..off + len].copy_from_slice(&data[..len]);
        }
        img
    }

    fn check(&self, s: &State) -> io::Result<()> {
        if s.dead {
            return Err(io::Error::other("device lost power"));
        }
        Ok(())
    }
}

impl Device for FaultDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.state.lock();
        self.check(&s)?;
        let off = usize::try_from(offset).map_err(io::Error::other)?;
        let src = s
            .volatile
            .get(off..off + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        self.check(&s)?;
        if s.cut_at == Some(s.writes) {
            let mut rng = s.cut_rng.clone();
            let img = Self::cut_of(&s, &mut rng);
            s.cut = Some((rng, img));
            s.dead = true;
            return Err(io::Error::other("device lost power"));
        }
        s.writes += 1;
        let off = usize::try_from(offset).map_err(io::Error::other)?;
        if off + buf.len() > s.volatile.len() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        s.volatile[off..off + buf.len()].copy_from_slice(buf);
        s.unflushed.push((offset, buf.to_vec()));
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        let mut s = self.state.lock();
        self.check(&s)?;
        let pending = std::mem::take(&mut s.unflushed);
        for (off, data) in pending {
            let off = off as usize;
            s.durable[off..off + data.len()].copy_from_slice(&data);
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().volatile.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushed_writes_survive_unflushed_may_not() {
        let dev = FaultDevice::new(vec![0; 4096]);
        dev.write_at(&[1; 512], 0).unwrap();
        dev.flush().unwrap();
        dev.write_at(&[2; 512], 512).unwrap();
        let mut kept_second = false;
        for seed in 0..64 {
            let img = dev.power_cut(&mut PowerCut::new(seed));
            assert_eq!(&img[..512], &[1; 512]);
            kept_second |= img[512..1024] == [2; 512];
        }
        assert!(kept_second);
    }

    #[test]
    fn armed_cut_kills_the_device() {
        let dev = FaultDevice::new(vec![0; 4096]);
        dev.arm_cut(1, PowerCut::new(3));
        dev.write_at(&[1; 8], 0).unwrap();
        assert!(dev.write_at(&[1; 8], 8).is_err());
        assert!(dev.is_dead());
        assert!(dev.flush().is_err());
        assert_eq!(dev.cut_image().unwrap().len(), 4096);
    }
}
