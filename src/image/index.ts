/** Images in the local store: load, find by name/ID, commit new ones. */
export { loadImage, imageSize, type LocalImage } from './local-image.js';
export { findImage, type FoundImage } from './find.js';
export { commitImage, type ImageParts } from './commit.js';
