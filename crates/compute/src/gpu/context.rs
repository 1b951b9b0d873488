//! The one GPU device a compute context uses: adapter choice, device creation, pipeline
//! cache, buffer pool, and the submit/readback helpers every kernel shares.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use wgpu::util::DeviceExt;

use super::arrays::{prelude, ArraySlots};
use super::pool::BufferPool;
use crate::error::{ComputeError, ComputeResult};

/// Invocations per workgroup of every 1-D kernel.
pub const WORKGROUP: u32 = 256;
/// Most workgroups along one dispatch dimension.
pub const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// How to open the GPU.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Accept a software adapter (lavapipe). Tests and `GPUFS_COMPUTE=gpu` do; `auto` does not.
    pub allow_software: bool,
    /// Bytes per storage binding chunk, lowered by tests to force arrays to split. `None`
    /// uses the adapter's limit (at most 1 GiB).
    pub chunk_bytes: Option<u64>,
    /// Most workgroups per dispatch dimension, lowered by tests to force 2-D grids with
    /// small inputs. `None`: 65,535.
    pub max_groups_per_dim: Option<u32>,
}

/// What a kernel binds in group 1 beyond the namespace arrays of group 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

/// One compiled kernel with its bind group layouts.
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    /// Group 0: the big chunked arrays the kernel reads (absent when it reads none).
    pub arrays: Option<wgpu::BindGroupLayout>,
    /// Group 1: the kernel's own uniform, inputs and outputs.
    pub own: wgpu::BindGroupLayout,
}

/// An open GPU device.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// True for a CPU-emulated adapter (lavapipe, SwiftShader, WARP).
    pub software: bool,
    /// Largest single storage binding in bytes.
    pub max_binding: u64,
    /// log2 of the words in one chunk of a chunked array.
    pub chunk_shift: u32,
    /// Most workgroups per dispatch dimension.
    pub max_groups_per_dim: u32,
    pub pool: BufferPool,
    kernels: Mutex<HashMap<&'static str, Arc<Kernel>>>,
    /// Bound in place of chunks an array does not have.
    pub(crate) empty: wgpu::Buffer,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("software", &self.software)
            .finish()
    }
}

/// The adapter to run on: hardware first (discrete, integrated, virtual), then software
/// when `opts` allows it.
fn pick_adapter(opts: &GpuOptions) -> ComputeResult<wgpu::Adapter> {
    let backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let Some(adapter) = adapters.into_iter().min_by_key(rank) else {
        return Err(ComputeError::NoGpu(
            "no Vulkan, Metal or DX12 adapter found (is a driver installed?)".into(),
        ));
    };
    let info = adapter.get_info();
    if info.device_type == wgpu::DeviceType::Cpu && !opts.allow_software {
        return Err(ComputeError::NoGpu(format!(
            "only a software adapter ({}) is present",
            info.name
        )));
    }
    Ok(adapter)
}

impl GpuContext {
    /// Opens the first Vulkan, Metal or DX12 adapter (never the GL fallback).
    pub fn open(opts: &GpuOptions) -> ComputeResult<GpuContext> {
        let adapter = pick_adapter(opts)?;
        let info = adapter.get_info();
        let software = info.device_type == wgpu::DeviceType::Cpu;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gpufs"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| ComputeError::NoGpu(format!("cannot open {}: {e}", info.name)))?;
        device.on_uncaptured_error(Arc::new(|e| {
            tracing::error!("GPU error outside a kernel call: {e}");
        }));
        let max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            .min(1 << 30);
        let chunk_bytes = opts
            .chunk_bytes
            .unwrap_or(max_binding)
            .clamp(64, max_binding);
        // Power-of-two words, so an index splits into chunk and offset by shift and mask.
        let chunk_shift = 63 - (chunk_bytes / 4).leading_zeros();
        let empty = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("empty chunk"),
            contents: &[0u8; 16],
            usage: wgpu::BufferUsages::STORAGE,
        });
        tracing::info!(
            "GPU: {} ({:?}, {:?}{})",
            info.name,
            info.backend,
            info.device_type,
            if software { ", software" } else { "" }
        );
        Ok(GpuContext {
            pool: BufferPool::default(),
            device,
            queue,
            info,
            software,
            max_binding,
            chunk_shift,
            max_groups_per_dim: opts
                .max_groups_per_dim
                .unwrap_or(MAX_GROUPS_PER_DIM)
                .clamp(1, MAX_GROUPS_PER_DIM),
            kernels: Mutex::new(HashMap::new()),
            empty,
        })
    }

    /// Words in one chunk of a chunked array.
    pub fn chunk_words(&self) -> u64 {
        1 << self.chunk_shift
    }

    /// The kernel `name`, compiled on first use from `body` with accessors for `arrays`
    /// prepended, and group 1 laid out as `own` (binding i = own[i]).
    pub fn kernel(
        &self,
        name: &'static str,
        body: &str,
        arrays: &[&str],
        own: &[Slot],
    ) -> ComputeResult<Arc<Kernel>> {
        if let Some(k) = self.kernels.lock().get(name) {
            return Ok(k.clone());
        }
        let slots = ArraySlots::new(arrays);
        let source = format!("{}\n{}", prelude(&slots, self.chunk_shift), body);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(Cow::Owned(source)),
            });
        let (array_layout, own_layout) = self.group_layouts(name, &slots, arrays, own);
        let empty_layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("no arrays"),
                entries: &[],
            });
        let group0 = array_layout.as_ref().unwrap_or(&empty_layout);
        let layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(group0), Some(&own_layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(ComputeError::Device(format!("kernel {name}: {e}")));
        }
        let kernel = Arc::new(Kernel {
            pipeline,
            arrays: array_layout,
            own: own_layout,
        });
        self.kernels.lock().insert(name, kernel.clone());
        Ok(kernel)
    }

    /// The layouts of group 0 (`arrays`' chunk bindings, read only; none without
    /// arrays) and group 1 (binding i = `own[i]`) of kernel `name`.
    fn group_layouts(
        &self,
        name: &'static str,
        slots: &ArraySlots<'_>,
        arrays: &[&str],
        own: &[Slot],
    ) -> (Option<wgpu::BindGroupLayout>, wgpu::BindGroupLayout) {
        let storage = |read_only| wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        };
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty,
            count: None,
        };
        let array_layout = (!arrays.is_empty()).then(|| {
            let entries: Vec<_> = (0..slots.bindings())
                .map(|b| entry(b, storage(true)))
                .collect();
            self.device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(name),
                    entries: &entries,
                })
        });
        let own_entries: Vec<_> = own
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let ty = match s {
                    Slot::Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Slot::Read => storage(true),
                    Slot::ReadWrite => storage(false),
                };
                entry(i as u32, ty)
            })
            .collect();
        let own_layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(name),
                entries: &own_entries,
            });
        (array_layout, own_layout)
    }

    /// A storage buffer holding `data` (padded to 4 bytes and at least 16).
    pub fn upload(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        let mut padded;
        let contents = if !data.len().is_multiple_of(4) || data.len() < 16 {
            padded = data.to_vec();
            padded.resize(data.len().next_multiple_of(4).max(16), 0);
            &padded[..]
        } else {
            data
        };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// A uniform buffer holding `data`.
    pub fn uniform(&self, data: &[u8]) -> wgpu::Buffer {
        let mut padded = data.to_vec();
        padded.resize(data.len().next_multiple_of(16).max(16), 0);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &padded,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// A zeroed read-write storage buffer of at least `bytes` bytes.
    pub fn zeroed(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.next_multiple_of(4).max(16),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Group 1 of `kernel` over `buffers` in binding order.
    pub fn own_group(&self, kernel: &Kernel, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<_> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &kernel.own,
            entries: &entries,
        })
    }

    /// An empty group 0 for kernels that bind no chunked arrays.
    pub fn no_arrays_group(&self, kernel: &Kernel) -> wgpu::BindGroup {
        let layout = kernel.pipeline.get_bind_group_layout(0);
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &[],
        })
    }

    /// Records `kernel` over `items` invocations (a 2-D grid above 65,535 groups).
    pub fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        groups: [&wgpu::BindGroup; 2],
        items: u64,
    ) -> ComputeResult<()> {
        let Some((x, y)) = super::grid::groups_for(items, WORKGROUP, self.max_groups_per_dim)
        else {
            return Err(ComputeError::TooLarge(format!(
                "{items} items exceed one dispatch"
            )));
        };
        record_pass(encoder, kernel, groups, x, y);
        Ok(())
    }

    /// Records `kernel` over `groups` workgroups of whatever size its WGSL declares (a
    /// 2-D grid above the per-dimension limit; the kernel recovers the group number with
    /// the prelude's `group_index` and skips numbers >= its count). For kernels that give
    /// each record or piece of a record one workgroup.
    pub fn dispatch_groups(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        bind: [&wgpu::BindGroup; 2],
        groups: u64,
    ) -> ComputeResult<()> {
        let Some((x, y)) = super::grid::groups_for(groups, 1, self.max_groups_per_dim) else {
            return Err(ComputeError::TooLarge(format!(
                "{groups} workgroups exceed one dispatch"
            )));
        };
        record_pass(encoder, kernel, bind, x, y);
        Ok(())
    }

    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    /// Submits `encoder` after copying `bytes` of `src` to a staging buffer, waits, and
    /// returns those bytes. Validation errors of the whole submission become an error.
    pub fn finish_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        bytes: u64,
    ) -> ComputeResult<Vec<u8>> {
        let size = bytes.next_multiple_of(4).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.submit(encoder)?;
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| ComputeError::Device(format!("poll: {e}")))?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ComputeError::Device(format!("map: {e}"))),
            Err(_) => return Err(ComputeError::Device("map callback lost".into())),
        }
        let view = slice
            .get_mapped_range()
            .map_err(|e| ComputeError::Device(format!("map range: {e}")))?;
        let mut out = view.to_vec();
        drop(view);
        staging.unmap();
        out.truncate(bytes as usize);
        Ok(out)
    }

    /// Submits `encoder` and waits for it, turning validation errors into an error.
    pub fn submit(&self, encoder: wgpu::CommandEncoder) -> ComputeResult<()> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        self.queue.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(ComputeError::Device(e.to_string()));
        }
        Ok(())
    }

    /// Waits until everything submitted has run.
    pub fn wait(&self) -> ComputeResult<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| ComputeError::Device(format!("poll: {e}")))
    }
}

/// One compute pass of `kernel` over an `x` by `y` grid of workgroups (none when `x` is 0).
fn record_pass(
    encoder: &mut wgpu::CommandEncoder,
    kernel: &Kernel,
    bind: [&wgpu::BindGroup; 2],
    x: u32,
    y: u32,
) {
    if x == 0 {
        return;
    }
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: None,
    });
    pass.set_pipeline(&kernel.pipeline);
    pass.set_bind_group(0, bind[0], &[]);
    pass.set_bind_group(1, bind[1], &[]);
    pass.dispatch_workgroups(x, y, 1);
}
