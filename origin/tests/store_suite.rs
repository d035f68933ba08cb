//! The storage conformance suite: what Keyframe relies on from a store, checked on
//! memory, local disk and (when configured) a real S3-compatible server.

use bytes::Bytes;
use futures::TryStreamExt;
use keyframe_origin::testing;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn put_get_range_head_list_delete() {
    for t in testing::all() {
        let s = &t.store;
        let p = Path::from("sha256/ab/obj.bin");
        let data = pattern(300_000, 7);
        s.put(&p, PutPayload::from(data.clone()))
            .await
            .expect("put");
        let meta = s.head(&p).await.expect("head");
        assert_eq!(meta.size, data.len() as u64, "{}", t.name);
        let got = s.get(&p).await.expect("get").bytes().await.expect("bytes");
        assert_eq!(got, Bytes::from(data.clone()), "{}", t.name);
        let r = s.get_range(&p, 1000..71_000).await.expect("range");
        assert_eq!(&r[..], &data[1000..71_000], "{}", t.name);
        let tail = s.get_range(&p, 299_990..300_000).await.expect("tail");
        assert_eq!(&tail[..], &data[299_990..], "{}", t.name);
        let listed: Vec<_> = s
            .list(Some(&Path::from("sha256")))
            .try_collect()
            .await
            .expect("list");
        assert_eq!(listed.len(), 1, "{}", t.name);
        assert_eq!(listed[0].location, p, "{}", t.name);
        s.delete(&p).await.expect("delete");
        let gone = s.head(&p).await;
        assert!(
            matches!(gone, Err(object_store::Error::NotFound { .. })),
            "{}: {gone:?}",
            t.name
        );
    }
}

#[tokio::test]
async fn missing_objects_are_not_found() {
    for t in testing::all() {
        let res = t.store.get(&Path::from("no/such/object")).await;
        assert!(
            matches!(res, Err(object_store::Error::NotFound { .. })),
            "{}",
            t.name
        );
        keyframe_core::store::check(&*t.store)
            .await
            .expect("store answers");
    }
}

#[tokio::test]
async fn multipart_uploads_assemble_in_order_and_abort_cleanly() {
    for t in testing::all() {
        let s = &t.store;
        let p = Path::from("big/multi.bin");
        // Parts of at least 5 MiB, as S3 requires for all but the last.
        let data = pattern(12 * 1024 * 1024 + 123, 3);
        let upload = s.put_multipart(&p).await.expect("start");
        let mut w = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
        for piece in data.chunks(1 << 20) {
            w.wait_for_capacity(4).await.expect("capacity");
            w.write(piece);
        }
        w.finish().await.expect("finish");
        let got = s.get(&p).await.expect("get").bytes().await.expect("bytes");
        assert_eq!(got.len(), data.len(), "{}", t.name);
        assert!(got[..] == data[..], "{}: multipart bytes differ", t.name);

        let q = Path::from("big/aborted.bin");
        let mut upload = s.put_multipart(&q).await.expect("start");
        upload
            .put_part(PutPayload::from(pattern(5 << 20, 1)))
            .await
            .expect("part");
        upload.abort().await.expect("abort");
        let res = s.head(&q).await;
        assert!(
            matches!(res, Err(object_store::Error::NotFound { .. })),
            "{}: aborted upload visible",
            t.name
        );
    }
}
