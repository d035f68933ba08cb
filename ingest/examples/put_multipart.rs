//! The baseline for `bench/scripts/ingest.sh` on S3: a plain multipart upload of a
//! file to a key, no hashing and no metadata, with the same part size and parts
//! in flight as ingest uses.
//!
//!   cargo run --release -p keyframe-ingest --example put_multipart -- STORE_URL KEY FILE

use futures::StreamExt;
use keyframe_ingest::objects::UploadPlan;
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, key, file] = args.as_slice() else {
        return Err("usage: put_multipart STORE_URL KEY FILE".into());
    };
    let store = keyframe_origin::store::open(url)?;
    let f = tokio::fs::File::open(file).await?;
    let plan = UploadPlan::for_size(Some(f.metadata().await?.len()));
    let upload = store.put_multipart(&Path::from(key.as_str())).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, plan.part_size);
    let mut input = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20);
    while let Some(chunk) = input.next().await {
        writer.wait_for_capacity(plan.concurrency).await?;
        writer.put(chunk?);
    }
    writer.finish().await?;
    Ok(())
}
