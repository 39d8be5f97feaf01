# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os
import tempfile
import unittest

import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset, MetaTensor

from aisam_monai.engines import AISAMEvaluator, AISAMTrainer
from aisam_monai.handlers import LossPartsHandler, PaperMetricHandler, PaperReportHandler, ResumeHandler
from aisam_monai.inferers import SliceVolumeInferer
from aisam_monai.losses import AISAMLoss
from aisam_monai.networks import AISAM

torch.set_num_threads(1)
SIZE = 64


def _slices(n=4):
    items = []
    for i in range(n):
        label = torch.zeros(1, SIZE, SIZE, dtype=torch.long)
        label[:, 10 + i : 30 + i, 12:40] = 1 + i % 3
        items.append({"image": torch.rand(3, SIZE, SIZE), "label": label})
    return items


def _volumes(n=2):
    items = []
    for i in range(n):
        label = torch.zeros(1, 40, 36, 4, dtype=torch.long)
        label[:, 8:24, 10:26, 1:3] = 1 + i
        image = MetaTensor(
            label.float() / 3 + 0.1 * torch.rand_like(label.float()), meta={"filename_or_obj": f"/x/case{i}.nii.gz"}
        )
        items.append(
            {"image": image, "label": MetaTensor(label, affine=torch.diag(torch.tensor([1.5, 1.5, 8.0, 1.0])))}
        )
    return items


def _trainer(net, epochs, handlers=(), **kwargs):
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.01)
    return AISAMTrainer(
        **kwargs,
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=DataLoader(Dataset(_slices()), batch_size=2),
        network=net,
        optimizer=opt,
        loss_function=AISAMLoss(num_classes=4),
        train_handlers=list(handlers),
        amp=True,  # no-op on the CPU
    )


class TestAISAMEngines(unittest.TestCase):
    def test_gradient_clipping(self):
        torch.manual_seed(0)
        net = AISAM(num_classes=4, sam_type="tiny", image_size=SIZE, train_encoder=True)
        trainer = _trainer(net, 1, max_grad_norm=1e-3)
        trainer.run()  # the gradients of the last step stay on the parameters (zeroed at the next step)
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        clipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
        self.assertGreater(trainer.state.grad_norm, 1e-3)  # the norm before clipping
        self.assertLessEqual(clipped, 1e-3 * (1 + 1e-4))
        with self.assertRaisesRegex(ValueError, "max_grad_norm"):
            _trainer(net, 1, max_grad_norm=0.0)

    def test_trainer_logs_parts_and_updates(self):
        net = AISAM(num_classes=4, sam_type="tiny", image_size=SIZE, train_encoder=True)
        before = [p.detach().clone() for p in net.parameters() if p.requires_grad]
        trainer = _trainer(net, 1, [LossPartsHandler()])
        trainer.run()
        out = trainer.state.output  # decollated, as in MONAI
        self.assertEqual(len(out), 2)
        self.assertEqual(out[0]["pred"].shape, (4, *net.mask_size))
        self.assertIsInstance(out[0]["loss"], float)  # the scalar loss, replicated per sample
        for part in ("seg", "cls", "point_correctness", "point_sharpness", "diversity"):
            self.assertIn(f"train_loss_{part}", trainer.state.metrics)
        after = [p for p in net.parameters() if p.requires_grad]
        self.assertTrue(any(not torch.equal(a, b) for a, b in zip(before, after)))

    def test_evaluator_metrics_and_report(self):
        net = AISAM(num_classes=4, sam_type="tiny", image_size=SIZE)
        with tempfile.TemporaryDirectory() as d:
            report = PaperReportHandler(
                d,
                ["RV", "Myo", "LV"],
                ("DICE", "RV", "Myo", "LV"),
                {"aisam": "val_mean_dice", "transunet": "val_mean_dice_transunet"},
                extra={"eval_mode": "gt_box"},
            )
            evaluator = AISAMEvaluator(
                device=torch.device("cpu"),
                val_data_loader=DataLoader(Dataset(_volumes()), batch_size=1),
                network=net,
                inferer=SliceVolumeInferer(image_size=SIZE, sw_batch_size=3, eval_prompts="gt_box"),
                key_val_metric={"val_mean_dice": PaperMetricHandler(4, "aisam")},
                additional_metrics={"val_mean_dice_transunet": PaperMetricHandler(4, "transunet")},
                val_handlers=[report],
            )
            evaluator.run()
            self.assertTrue(0.0 <= evaluator.state.metrics["val_mean_dice"] <= 1.0)
            self.assertEqual(evaluator.state.output["label_lowres"].shape, (1, 1, *net.mask_size, 4))
            self.assertTrue(os.path.isfile(os.path.join(d, "metrics_per_case.csv")))
            summary = report.summary
            self.assertEqual(summary["eval_mode"], "gt_box")
            self.assertEqual(summary["protocols"]["transunet"]["num_cases"], 2)
            with open(os.path.join(d, "metrics_per_case.csv")) as f:
                cases = {line.split(",")[0] for line in f.readlines()[1:]}
            self.assertEqual(cases, {"case0", "case1"})

    def test_resume_continues_epochs(self):
        with tempfile.TemporaryDirectory() as d:
            net = AISAM(num_classes=4, sam_type="tiny", image_size=SIZE, train_encoder=True)
            trainer = _trainer(net, 2)
            ResumeHandler(d, {"model": net, "optimizer": trainer.optimizer}).attach(trainer)
            trainer.run()
            self.assertTrue(os.path.isfile(os.path.join(d, "checkpoint_epoch=2.pt")))
            weights = {k: v.clone() for k, v in net.state_dict().items()}

            net2 = AISAM(num_classes=4, sam_type="tiny", image_size=SIZE, train_encoder=True)
            trainer2 = _trainer(net2, 3)
            started = []
            trainer2.add_event_handler(Events.EPOCH_STARTED, lambda e: started.append(e.state.epoch))
            ResumeHandler(d, {"model": net2, "optimizer": trainer2.optimizer}).attach(trainer2)
            loaded = {}
            trainer2.add_event_handler(
                Events.STARTED, lambda e: loaded.update({k: v.clone() for k, v in net2.state_dict().items()})
            )
            trainer2.run()
            self.assertEqual(started, [3])
            self.assertTrue(os.path.isfile(os.path.join(d, "checkpoint_epoch=3.pt")))
            self.assertFalse(os.path.isfile(os.path.join(d, "checkpoint_epoch=2.pt")))
            self.assertEqual(trainer2.state.epoch, 3)
            for k, v in weights.items():
                torch.testing.assert_close(loaded[k], v)

    def test_resume_rejects_other_num_classes(self):
        with tempfile.TemporaryDirectory() as d:
            net = AISAM(num_classes=3, sam_type="tiny", image_size=SIZE)
            torch.save({"model": net.state_dict()}, os.path.join(d, "checkpoint_epoch=1.pt"))
            other = AISAM(num_classes=4, sam_type="tiny", image_size=SIZE)
            with self.assertRaisesRegex(ValueError, "for 3 classes but the network has num_classes=4"):
                ResumeHandler(d, {"model": other})


if __name__ == "__main__":
    unittest.main()
