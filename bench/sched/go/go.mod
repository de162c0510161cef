module gortschedbench

go 1.19
