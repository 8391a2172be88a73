/* reconcile.h — placeholder: being written */
#pragma once
