//! The JSON shapes the API answers with, and how they are made from the model.

use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::cache::CachedUser;
use crate::meta::{Asset, Content, Right};
use crate::playback::{availability, image_expiry, Availability};
use crate::state::AppState;

/// An error: `{error, code}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A human-readable message.
    pub error: String,
    /// A stable machine-readable code, e.g. `username_taken` (the `ErrorCode`
    /// schema lists them all).
    #[schema(schema_with = super::error::error_code_ref)]
    pub code: String,
}

/// An image (poster, variant, avatar) with a URL the browser can load.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ImageLink {
    pub role: String,
    /// The edge URL, signed when tokens are on.
    pub url: String,
    pub mime: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// A tiny inline thumbnail (`data:` URL) to show while the image loads.
    pub inline_thumbnail: Option<String>,
}

/// Media facts of a title's source file.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MediaInfo {
    pub mime: String,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_ms: Option<i64>,
    pub bitrate: Option<i64>,
    pub container: Option<String>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// Whether an MP4's index comes first (playback can start before the end arrives).
    pub faststart: Option<bool>,
}

/// A stored asset; images carry a URL (the source is played through `/play`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AssetView {
    #[serde(flatten)]
    pub asset: Asset,
    pub url: Option<String>,
}

/// A title in a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ContentSummary {
    pub id: String,
    pub title: String,
    pub description: String,
    /// `video`, `audio`, `image`, `other`.
    pub kind: String,
    pub categories: Vec<String>,
    pub duration_ms: Option<i64>,
    pub poster: Option<ImageLink>,
    pub created_at: i64,
    /// Where the title stands in the caller's region.
    pub availability: Availability,
}

/// A page of titles.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ContentList {
    pub items: Vec<ContentSummary>,
    /// The `offset` of the next page; `null` on the last page.
    pub next_offset: Option<u32>,
    /// The region the list was made for (`null` when unknown).
    pub region: Option<String>,
}

/// A title with everything about it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ContentDetail {
    pub id: String,
    pub title: String,
    pub description: String,
    pub kind: String,
    pub categories: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub duration_ms: Option<i64>,
    pub poster: Option<ImageLink>,
    /// Every image: poster and its variants.
    pub images: Vec<ImageLink>,
    /// The source file's media facts.
    pub media: Option<MediaInfo>,
    pub assets: Vec<AssetView>,
    /// The adaptive-streaming ladder (empty without one): video rungs tallest
    /// first, then audio.
    pub renditions: Vec<crate::ladder::RenditionView>,
    pub availability: Availability,
    /// Rights in every region: only for the admin token, else `null`.
    pub rights: Option<Vec<Right>>,
    /// Where the signed-in viewer left off, in ms: `null` until watch history exists
    /// (and for anonymous callers).
    pub resume_position_ms: Option<i64>,
    /// Whether the signed-in viewer finished it: `null` until watch history exists.
    pub watched: Option<bool>,
}

/// A category with how many titles have it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CategoryCount {
    pub name: String,
    pub count: i64,
}

/// A playback URL for the caller's region.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PlayResponse {
    /// `<edge>/v1/objects/<key>?__token__=…` (no token when tokens are off).
    pub url: String,
    /// The edge base URL for the region.
    pub edge: String,
    /// The caller's region (`null` when unknown: only titles licensed everywhere).
    pub region: Option<String>,
    /// When the URL's token expires, Unix ms.
    pub expires_at: i64,
    pub mime: String,
    pub duration_ms: Option<i64>,
    /// Where the viewer left off, in ms (`null` until watch history exists).
    pub resume_position_ms: Option<i64>,
    /// The HLS multivariant playlist on the edge, when the title has an adaptive
    /// ladder (absent otherwise). `url`, `hls` and `dash` then share one token whose
    /// `acl` lists every object of the title (renditions and playlists included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hls: Option<String>,
    /// The DASH MPD on the edge, when the title has an adaptive ladder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dash: Option<String>,
}

/// A user as they see themselves (never the password hash).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    pub display_name: Option<String>,
    pub created_at: i64,
    pub avatar: Option<AvatarView>,
}

/// A user's profile image.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AvatarView {
    pub url: String,
    pub mime: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// Smaller renditions, when the image path made them.
    pub variants: Vec<ImageLink>,
}

/// A new session.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The session token (also set as the `kf_session` cookie); send it as
    /// `Authorization: Bearer <token>` from non-browser clients.
    pub token: String,
    /// Unix ms.
    pub expires_at: i64,
    pub user: UserView,
}

/// The per-request context views are made in.
pub struct ViewCtx<'a> {
    pub state: &'a AppState,
    pub region: Option<&'a str>,
    pub now_ms: i64,
}

fn is_image(a: &Asset) -> bool {
    a.mime.starts_with("image/")
}

impl ViewCtx<'_> {
    fn edge(&self) -> &str {
        self.state.config.edge_for(self.region)
    }

    fn image(&self, a: &Asset) -> Result<ImageLink, ApiError> {
        let exp = image_expiry(self.now_ms, self.state.config.image_token_ttl_secs);
        let url = self
            .state
            .signer
            .url(self.edge(), &a.object_key, exp, None)
            .map_err(|e| ApiError::internal("signing an image URL", e))?;
        Ok(ImageLink {
            role: a.role.clone(),
            url,
            mime: a.mime.clone(),
            width: a.width,
            height: a.height,
            inline_thumbnail: a.inline_thumbnail.clone(),
        })
    }

    /// The poster: the `poster` asset, else the smallest image at least 320 wide,
    /// else any image.
    fn poster<'c>(&self, assets: &'c [Asset]) -> Option<&'c Asset> {
        assets
            .iter()
            .find(|a| a.role == "poster" && is_image(a))
            .or_else(|| {
                assets
                    .iter()
                    .filter(|a| is_image(a) && a.width.unwrap_or(0) >= 320)
                    .min_by_key(|a| a.width)
            })
            .or_else(|| assets.iter().find(|a| is_image(a)))
    }

    pub fn summary(&self, c: &Content) -> Result<ContentSummary, ApiError> {
        Ok(ContentSummary {
            id: c.id.clone(),
            title: c.title.clone(),
            description: c.description.clone(),
            kind: c.kind.clone(),
            categories: c.categories.clone(),
            duration_ms: source(c).and_then(|a| a.duration_ms),
            poster: self.poster(&c.assets).map(|a| self.image(a)).transpose()?,
            created_at: c.created_at,
            availability: availability(&c.rights, self.region, self.now_ms),
        })
    }

    pub fn detail(&self, c: &Content, admin: bool) -> Result<ContentDetail, ApiError> {
        let images = c
            .assets
            .iter()
            .filter(|a| is_image(a))
            .map(|a| self.image(a))
            .collect::<Result<Vec<_>, _>>()?;
        let assets = c
            .assets
            .iter()
            .map(|a| {
                Ok(AssetView {
                    asset: a.clone(),
                    url: if is_image(a) {
                        Some(self.image(a)?.url)
                    } else {
                        None
                    },
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let src = source(c);
        Ok(ContentDetail {
            id: c.id.clone(),
            title: c.title.clone(),
            description: c.description.clone(),
            kind: c.kind.clone(),
            categories: c.categories.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            duration_ms: src.and_then(|a| a.duration_ms),
            poster: self.poster(&c.assets).map(|a| self.image(a)).transpose()?,
            images,
            media: src.map(|a| MediaInfo {
                mime: a.mime.clone(),
                size: a.size,
                width: a.width,
                height: a.height,
                duration_ms: a.duration_ms,
                bitrate: a.bitrate,
                container: a.container.clone(),
                video_codec: a.video_codec.clone(),
                audio_codec: a.audio_codec.clone(),
                faststart: a.faststart,
            }),
            assets,
            renditions: Vec::new(),
            availability: availability(&c.rights, self.region, self.now_ms),
            rights: admin.then(|| c.rights.clone()),
            resume_position_ms: None,
            watched: None,
        })
    }

    pub fn user(&self, u: &CachedUser) -> Result<UserView, ApiError> {
        let avatar = match u
            .assets
            .iter()
            .find(|a| a.role == "avatar" && is_image(a))
            .or_else(|| {
                u.assets
                    .iter()
                    .filter(|a| is_image(a))
                    .max_by_key(|a| a.width)
            }) {
            Some(main) => {
                let link = self.image(main)?;
                let variants = u
                    .assets
                    .iter()
                    .filter(|a| is_image(a) && a.id != main.id)
                    .map(|a| self.image(a))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(AvatarView {
                    url: link.url,
                    mime: link.mime,
                    width: link.width,
                    height: link.height,
                    variants,
                })
            }
            None => None,
        };
        Ok(UserView {
            id: u.user.id.clone(),
            username: u.user.username.clone(),
            email: u.user.email.clone(),
            date_of_birth: u.user.date_of_birth.clone(),
            display_name: u.user.display_name.clone(),
            created_at: u.user.created_at,
            avatar,
        })
    }
}

/// The title's playable file: the `source` asset.
pub fn source(c: &Content) -> Option<&Asset> {
    c.assets.iter().find(|a| a.role == "source")
}
