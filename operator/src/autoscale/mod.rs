pub mod keda;
