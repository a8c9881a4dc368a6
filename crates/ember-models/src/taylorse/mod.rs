//! TaylorSENet (Li et al., IJCAI 2022, arXiv 2205.00206) as the official code builds it
//! (Andong-Li-speech/TaylorSENet, `nets/TaylorSENet.py`), with its state_dict names and every
//! constructor argument a config field. Spec: `specs/taylorse.md`.

mod config;
mod layers;
mod model;
mod tcm;
mod unet;

pub use config::{Connect, TaylorSeConfig};
pub use model::TaylorSeNet;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};
    use ember_core::SeededVarMap;

    fn built(config: &TaylorSeConfig) -> (SeededVarMap, TaylorSeNet) {
        let map = SeededVarMap::new(0);
        let net = TaylorSeNet::new(map.var_builder(DType::F32, &Device::Cpu), config).unwrap();
        (map, net)
    }

    fn count(map: &SeededVarMap) -> (usize, usize) {
        let named = map.named();
        (named.len(), named.iter().map(|(_, v)| v.elem_count()).sum())
    }

    #[test]
    fn the_official_model_has_the_official_parameters() {
        // Spec section 4: 469 tensors, 5,401,351 parameters.
        let (map, _) = built(&TaylorSeConfig::official());
        assert_eq!(count(&map), (469, 5_401_351));
        let names: Vec<String> = map.named().into_iter().map(|(k, _)| k).collect();
        for key in [
            "zeroorderblock.en.meta_unet_list.0.in_conv.0.conv.weight",
            "zeroorderblock.en.meta_unet_list.1.enco.2.conv.1.weight",
            "zeroorderblock.de.meta_unet_list.3.deco.1.deconv.3.weight",
            "zeroorderblock.de.last_conv.3.bias",
            "highorderblock_list.2.tcms.1.tcm_list.3.right_conv.3.weight",
            "separate_en.last_conv.2.weight",
        ] {
            assert!(names.iter().any(|n| n == key), "missing {key}");
        }
    }

    #[test]
    fn variants_build_and_keep_the_shape() {
        let small = TaylorSeConfig::small();
        for config in [
            TaylorSeConfig {
                is_u2: false,
                ..small.clone()
            },
            TaylorSeConfig {
                is_param_share: true,
                is_encoder_share: true,
                ..small.clone()
            },
            TaylorSeConfig {
                order_num: 0,
                is_causal: false,
                ..small.clone()
            },
            TaylorSeConfig {
                fft_num: 128,
                d_feat: 64,
                k2: [1, 3],
                k1: [2, 3],
                ..small.clone()
            },
        ] {
            let (_, net) = built(&config);
            let x = Tensor::randn(0f32, 1.0, (2, 2, 7, config.bins()), &Device::Cpu).unwrap();
            assert_eq!(net.forward(&x).unwrap().dims(), x.dims(), "{config:?}");
        }
        // Parameter sharing leaves one derivative operator.
        let (shared, _) = built(&TaylorSeConfig {
            is_param_share: true,
            ..small.clone()
        });
        assert!(shared
            .named()
            .iter()
            .all(|(k, _)| !k.starts_with("highorderblock_list.1.")));
    }
}
